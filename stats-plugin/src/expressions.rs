//! The thin adapter between the stats logic and the shared CEL binding
//! (`proxy_attributes::expr`). Everything CEL-specific stays behind these three calls so the
//! schema and the report path do not depend on the binding's types.

use proxy_attributes::host::Host;

/// A compiled expression (compiled once, at configure time).
pub struct Program {
    text: String,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Program({:?})", self.text)
    }
}

/// Compiles `text`; the error message is logged by the caller.
pub fn compile(text: &str) -> Result<Program, String> {
    Err(format!("CEL is not available in this build: {text}"))
}

/// One report's attribute view: every attribute (and the peer) is read at most once per report.
pub struct Scope<'h> {
    _host: &'h dyn Host,
}

impl<'h> Scope<'h> {
    pub fn new(host: &'h dyn Host) -> Self {
        Scope { _host: host }
    }

    /// A dimension value: strings verbatim, other values rendered like CEL `string()`;
    /// `None` when evaluation fails (the caller stores `unknown`).
    pub fn label(&self, program: &Program) -> Option<String> {
        let _ = &program.text;
        None
    }

    /// A `definitions[].value`: `None` when evaluation fails or the result is not an integer.
    pub fn int(&self, program: &Program) -> Option<i64> {
        let _ = &program.text;
        None
    }
}
