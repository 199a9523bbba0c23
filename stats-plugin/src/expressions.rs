//! The thin adapter between the stats logic and the shared CEL binding
//! (`proxy_attributes::expr`). Everything CEL-specific stays behind these calls so the schema and
//! the report path do not depend on the binding's types.

use proxy_attributes::expr::{to_i64, to_label, Attributes, Expr};
use proxy_attributes::host::Host;

/// A compiled expression (compiled once, at configure time).
pub type Program = Expr;

/// Compiles `text`; the error message is logged by the caller.
pub fn compile(text: &str) -> Result<Program, String> {
    Expr::compile(text).map_err(|e| e.to_string())
}

/// One report's attribute view: each attribute (and the peer) is read at most once per report,
/// however many expressions reference it.
pub struct Scope<'h> {
    attrs: Attributes<'h>,
}

impl<'h> Scope<'h> {
    pub fn new(host: &'h dyn Host) -> Self {
        Scope {
            attrs: Attributes::new(host),
        }
    }

    /// A dimension value: strings verbatim, other scalars rendered like CEL `string()`
    /// (deliberate deviation: Istio's Wasm plugin stores raw `serializeValue` bytes, §4.3);
    /// `None` when evaluation fails or the value has no label form (the caller stores `unknown`).
    pub fn label(&self, program: &Program) -> Option<String> {
        program.eval(&self.attrs).ok().as_ref().and_then(to_label)
    }

    /// A `definitions[].value`: `None` when evaluation fails or the result is not an integer
    /// (Istio then records 0).
    pub fn int(&self, program: &Program) -> Option<i64> {
        program.eval(&self.attrs).ok().as_ref().and_then(to_i64)
    }
}
