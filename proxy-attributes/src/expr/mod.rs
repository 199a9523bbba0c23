//! The CEL binding on the `cel` crate (0.15, no default features).
//!
//! * [`Expr::compile`] once at configure time: malformed input is an `Err`, never a panic
//!   (cel ≥ 0.11.4 fixed the parser panics of CVE-2025-62162; its parser stops at a recursion
//!   limit; we also cap the source length).
//! * The CEL environment (`Env::stdlib()` + our `matches`) is built once per process/VM and
//!   shared: building it costs ~27 µs (crates.md §3), a per-evaluation `Context::with_env` only
//!   clones an `Arc`.
//! * [`Expr::eval`] runs against an [`Attributes`]: a per-request, lazy, memoising resolver over
//!   a [`Host`](crate::host::Host) that fetches only what the expression references.
//! * [`to_label`], [`to_bool`], [`to_i64`] turn results into what the plugins store.

mod ast_check;
mod attributes;
mod fast;
mod lazy;
mod leaf_reads;
mod regex;
mod render;

pub use attributes::Attributes;
pub use leaf_reads::LeafReads;
pub use render::{to_bool, to_i64, to_label};

pub use cel::Value;

use crate::host::{AsDynHost, Host};
use cel::parser::PrattParser;
use cel::{Context, Env, IdedExpr};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Longest expression source accepted (Istio configs are one-liners; this only stops abuse).
pub const MAX_SOURCE_LEN: usize = 16 * 1024;

/// A compiled CEL expression.
pub struct Expr {
    ast: IdedExpr,
    source: String,
    /// `Some(["a", "b", "c"])` when the whole expression is a plain attribute name
    /// (`istio_operationId`, `upstream_peer.istio_version`, `xds.cluster_name`), split at the
    /// dots once, here: see [`Expr::eval`].
    name_segs: Option<Vec<String>>,
    /// A plain name that needs no resolver walk at all: resolved here, at compile time.
    direct: Option<Direct>,
    /// The direct evaluator's form, for comparisons and logic over attributes ([`fast`]).
    fast: Option<fast::Fast>,
}

/// What a plain-name expression reads, when that is known at compile time.
#[derive(Debug)]
enum Direct {
    /// One of Envoy's typed leaves (`request.method`, `xds.cluster_name`): its memo slot.
    Leaf(usize),
    /// A bare identifier Envoy answers from filter state (`istio_operationId`).
    FilterState(String),
    /// A string field of the peer node (`upstream_peer.istio_version`): `true` = upstream.
    PeerField(bool, PeerString),
}

/// The peer node's string fields (`PeerVal::field`'s strings).
#[derive(Debug, Clone, Copy)]
enum PeerString {
    Name,
    Namespace,
    Owner,
    WorkloadName,
    IstioVersion,
    MeshId,
    ClusterId,
}

impl PeerString {
    fn parse(field: &str) -> Option<Self> {
        Some(match field {
            "name" => PeerString::Name,
            "namespace" => PeerString::Namespace,
            "owner" => PeerString::Owner,
            "workload_name" => PeerString::WorkloadName,
            "istio_version" => PeerString::IstioVersion,
            "mesh_id" => PeerString::MeshId,
            "cluster_id" => PeerString::ClusterId,
            _ => return None,
        })
    }

    fn of(self, n: &crate::peer::PeerNode) -> &str {
        match self {
            PeerString::Name => &n.name,
            PeerString::Namespace => &n.namespace,
            PeerString::Owner => &n.owner,
            PeerString::WorkloadName => &n.workload_name,
            PeerString::IstioVersion => &n.istio_version,
            PeerString::MeshId => &n.mesh_id,
            PeerString::ClusterId => &n.cluster_id,
        }
    }
}

/// The dotted name of an identifier or of a chain of field selections on one (not `has()`).
fn plain_name(e: &cel::common::ast::Expr) -> Option<String> {
    use cel::common::ast::Expr as E;
    match e {
        E::Ident(name) => Some(name.clone()),
        E::Select(s) if !s.test => {
            let mut out = plain_name(&s.operand.expr)?;
            out.push('.');
            out.push_str(&s.field);
            Some(out)
        }
        _ => None,
    }
}

/// Most AST nodes one expression may have (Istio's are tens of nodes).
const MAX_NODES: usize = 10_000;
/// Parser recursion limit (cel's default is 96; cel-cpp's is 250 — ours stays well inside a
/// wasm32 stack of 1 MiB).
const MAX_DEPTH: u16 = 96;

/// Why an expression did not compile: the parser's message (with line:column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CompileError {}

/// Why an evaluation failed: a missing attribute or key, a type error, a bad regex, …
/// Istio's plugins treat every such error the same way (stats: `unknown`; attributegen: abort).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError(pub cel::ExecutionError);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for EvalError {}

fn build_env() -> Env {
    let mut env = Env::stdlib();
    regex::register(&mut env);
    env
}

/// The shared environment. wasm32-unknown-unknown is single-threaded; `OnceLock` is still the
/// right tool natively (tests run on many threads).
pub(crate) fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(build_env()))
}

impl Expr {
    /// Parses and checks `src` against the shared environment. Also precompiles the regex of
    /// every `matches()` whose pattern is a string literal (a bad literal pattern is left for
    /// evaluation to report, as cel-cpp does).
    pub fn compile(src: &str) -> Result<Expr, CompileError> {
        if src.len() > MAX_SOURCE_LEN {
            return Err(CompileError {
                message: format!(
                    "expression is {} bytes long, the limit is {MAX_SOURCE_LEN}",
                    src.len()
                ),
            });
        }
        if src.trim().is_empty() {
            return Err(CompileError {
                message: "empty expression".to_string(),
            });
        }
        // cel's hand-written Pratt parser (feature `parser_pratt`) instead of the default
        // ANTLR one: same AST and standard macros, and with nothing calling the ANTLR parser the
        // linker drops it and the antlr4rust runtime (hundreds of KB of wasm).
        let ast = PrattParser::new()
            .max_recursion_depth(MAX_DEPTH)
            .max_expression_node_count(MAX_NODES)
            .parse(src)
            .map_err(|e| CompileError {
                message: e.to_string(),
            })?;
        // The parser bounds some nesting but not all (`!!!…x`, `a[0][0]…`, `-(-(…))`); evaluation
        // and drop recurse over the AST, so bound its depth here, and refuse the node kinds the
        // interpreter would panic on.
        ast_check::check(&ast, MAX_DEPTH as usize).map_err(|message| CompileError { message })?;
        regex::precompile_literals(&ast);
        let name = plain_name(&ast.expr);
        // A plain name already has its own direct path; literals alone gain nothing.
        let fast = match &ast.expr {
            cel::common::ast::Expr::Call(_) => fast::compile(&ast),
            _ => None,
        };
        let name_segs: Option<Vec<String>> =
            name.map(|n| n.split('.').map(str::to_string).collect());
        let direct = name_segs.as_ref().and_then(|segs| {
            let names: Vec<&str> = segs.iter().map(String::as_str).collect();
            match (attributes::leaf_of(&names), names.as_slice()) {
                (Some(i), _) => Some(Direct::Leaf(i)),
                (None, [one]) if attributes::is_filter_state_name(one) => {
                    Some(Direct::FilterState(one.to_string()))
                }
                (None, [peer @ ("upstream_peer" | "downstream_peer"), field]) => {
                    PeerString::parse(field).map(|f| Direct::PeerField(*peer == "upstream_peer", f))
                }
                _ => None,
            }
        });
        Ok(Expr {
            ast,
            source: src.to_string(),
            name_segs,
            direct,
            fast,
        })
    }

    /// The interpreter alone (tests compare it with the direct-name path).
    #[cfg(test)]
    fn eval_interpreted(&self, attrs: &Attributes<'_>) -> Result<Value, EvalError> {
        let mut ctx = Context::with_env(Arc::clone(env()));
        ctx.set_variable_resolver(attrs);
        Value::resolve(&self.ast, &ctx).map_err(EvalError)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against one request's attributes.
    ///
    /// A plain attribute name is answered by the resolver directly: the interpreter would join
    /// the segments, ask the same resolver for the whole name first and convert its answer the
    /// same way, so the result is identical, minus the context setup and the name allocation.
    /// When the resolver has no value for the whole name (a miss, or a prefix that must be
    /// selected into), the interpreter runs and reports as usual.
    pub fn eval(&self, attrs: &Attributes<'_>) -> Result<Value, EvalError> {
        if let Some(v) = self.fast.as_ref().and_then(|f| fast::eval(f, attrs)) {
            return Ok(v.into_value());
        }
        match &self.direct {
            Some(Direct::Leaf(i)) => {
                if let Some(s) = attrs.leaf_scalar(*i) {
                    return Ok(s.to_value());
                }
            }
            Some(Direct::FilterState(name)) => {
                if let Some(r) = attrs.filter_state_value(name) {
                    return r.map_err(EvalError);
                }
                // Absent: the interpreter reports it (the miss is memoised, no second read).
                return self.eval_by_interpreter(attrs);
            }
            Some(Direct::PeerField(..)) | None => {}
        }
        if let Some(segs) = &self.name_segs {
            if let Some(v) = fast::lookup_segments(attrs, segs) {
                return v.as_ref().try_into().map_err(EvalError);
            }
        }
        self.eval_by_interpreter(attrs)
    }

    /// The value of a condition when the direct evaluator decides it from Envoy's typed leaves
    /// alone, read through `reads`, and it is a bool; `None`: evaluate with [`Expr::eval`] on
    /// `reads.to_attributes()`, which gives the same answer (or the non-bool result) and reports
    /// errors.
    pub fn test_leaves<H: Host + AsDynHost + ?Sized>(
        &self,
        reads: &LeafReads<'_, H>,
    ) -> Option<bool> {
        match fast::eval(self.fast.as_ref()?, reads)? {
            fast::Fv::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The label text of the result ([`to_label`] of [`Expr::eval`]), without the intermediate
    /// CEL value where the name was resolved at compile time: a filter-state string or a peer
    /// field is copied once into the label.
    pub fn eval_label(&self, attrs: &Attributes<'_>) -> Option<String> {
        match &self.direct {
            Some(Direct::Leaf(i)) => match attrs.leaf_scalar(*i) {
                Some(attributes::Scalar::Str(s)) => return Some(s.clone()),
                Some(other) => return to_label(&other.to_value()),
                None => {}
            },
            Some(Direct::FilterState(name)) => {
                return match attrs.filter_state_value(name) {
                    // The string was just built from the host's buffer: take it, no copy.
                    Some(Ok(Value::String(s))) => {
                        Some(Arc::try_unwrap(s).unwrap_or_else(|s| s.as_str().to_string()))
                    }
                    Some(r) => r.ok().as_ref().and_then(to_label),
                    // Absent: the interpreter's verdict (the miss is memoised, no second read).
                    None => self
                        .eval_by_interpreter(attrs)
                        .ok()
                        .as_ref()
                        .and_then(to_label),
                };
            }
            Some(Direct::PeerField(upstream, field)) => {
                let node = if *upstream {
                    attrs.upstream_peer()
                } else {
                    attrs.downstream_peer()
                };
                if let Some(n) = node {
                    return Some(field.of(n).to_string());
                }
            }
            None => {}
        }
        self.eval(attrs).ok().as_ref().and_then(to_label)
    }

    fn eval_by_interpreter(&self, attrs: &Attributes<'_>) -> Result<Value, EvalError> {
        let mut ctx = Context::with_env(Arc::clone(env()));
        ctx.set_variable_resolver(attrs);
        Value::resolve(&self.ast, &ctx).map_err(EvalError)
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

#[cfg(test)]
mod tests;
