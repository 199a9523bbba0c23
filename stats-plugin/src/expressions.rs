//! The thin adapter between the stats logic and the shared CEL binding
//! (`proxy_attributes::expr`). Everything CEL-specific stays behind these calls so the schema and
//! the report path do not depend on the binding's types.

use proxy_attributes::expr::{to_i64, Attributes, Expr};
use proxy_attributes::host::Host;
use proxy_attributes::peer::PeerNode;
use std::cell::OnceCell;
use std::sync::Arc;

/// A compiled expression (compiled once, at configure time).
pub type Program = Expr;

/// Compiles `text`; the error message is logged by the caller.
pub fn compile(text: &str) -> Result<Program, String> {
    Expr::compile(text).map_err(|e| e.to_string())
}

/// Whether `text` only reads the local node (`node.*`) and literals: its value cannot change
/// after configure (the bootstrap node is fixed for the process), so it is evaluated once.
/// Conservative: anything else (including comprehension variables) is per request.
pub fn is_node_only(text: &str) -> bool {
    // Called only for texts `Expr::compile` accepted (so depth and size are already bounded).
    match cel::parser::PrattParser::new().parse(text) {
        Ok(ast) => ast.references().variables().iter().all(|v| *v == "node"),
        Err(_) => false,
    }
}

/// One report's attribute view: each attribute (and the peer) is read at most once per report,
/// however many expressions reference it. Built on first use, so a report without per-request
/// expressions costs nothing here.
pub struct Scope<'h> {
    host: &'h dyn Host,
    attrs: OnceCell<Attributes<'h>>,
    /// A peer the report already decoded: (`true` = upstream, the node).
    peer: Option<(bool, Option<Arc<PeerNode>>)>,
}

impl<'h> Scope<'h> {
    pub fn new(host: &'h dyn Host) -> Self {
        Scope {
            host,
            attrs: OnceCell::new(),
            peer: None,
        }
    }

    /// Hands CEL the peer node the report resolved from filter state (`upstream_peer` when
    /// `upstream`, else `downstream_peer`), so `*_peer.*` expressions neither re-read nor
    /// re-decode it.
    /// (In place: a `Scope` holds a whole resolver slot, and moving it was a `memory.copy`.)
    pub fn set_peer(&mut self, upstream: bool, node: Option<Arc<PeerNode>>) {
        self.peer = Some((upstream, node));
    }

    fn attrs(&self) -> &Attributes<'h> {
        self.attrs.get_or_init(|| {
            let attrs = Attributes::new(self.host);
            match &self.peer {
                Some((true, node)) => attrs.provide_upstream_peer(node.clone()),
                Some((false, node)) => attrs.provide_downstream_peer(node.clone()),
                None => {}
            }
            attrs
        })
    }

    /// A dimension value: strings verbatim, other scalars rendered like CEL `string()`
    /// (deliberate deviation: Istio's Wasm plugin stores raw `serializeValue` bytes, §4.3);
    /// `None` when evaluation fails or the value has no label form (the caller stores `unknown`).
    pub fn label(&self, program: &Program) -> Option<String> {
        program.eval_label(self.attrs())
    }

    /// A `definitions[].value`: `None` when evaluation fails or the result is not an integer
    /// (Istio then records 0).
    pub fn int(&self, program: &Program) -> Option<i64> {
        program.eval(self.attrs()).ok().as_ref().and_then(to_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::is_node_only;

    #[test]
    fn node_only_detection() {
        assert!(is_node_only("node.metadata['MESH_ID']"));
        assert!(is_node_only("'_' + node.metadata.LABELS.version"));
        assert!(is_node_only("1"));
        assert!(!is_node_only("upstream_peer.istio_version"));
        assert!(!is_node_only("request.method.startsWith('GET') ? 1 : 0"));
        assert!(!is_node_only("[1].map(x, x)"));
        assert!(!is_node_only("1 +"));
    }
}
