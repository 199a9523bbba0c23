//! A direct evaluator for the shapes Istio configs use most: attribute names compared with
//! literals and combined with `&&`, `||`, `!` and `?:`, plus `startsWith` / `endsWith` /
//! `contains` on a string (attributegen's `request.url_path == '/items' && request.method ==
//! 'GET'`, the book's `request.method.startsWith('GET') ? 1 : 0`).
//!
//! Why: the interpreter resolves every identifier by joining and re-splitting its qualified name
//! and walks a generic value model; for these shapes that was most of an evaluation (perf,
//! attributegen book rules). The result is identical by construction: the direct path only
//! answers when every value it needs resolved to a plain scalar of the expected type; on
//! anything else (a missing attribute, a type mismatch, a map) it gives up and the interpreter
//! evaluates the whole expression, errors included. Short-circuits follow CEL's: `false && x`
//! is `false` and `true || x` is `true` whatever `x` is, so not evaluating `x` there is exact.

use std::sync::Arc;

use cel::common::ast::{operators, Expr as E, IdedExpr, LiteralValue};
use cel::Value;

use super::attributes::{leaf_of, Attributes, LeafVal};
use super::leaf_reads::LeafReads;
use super::plain_name;
use crate::host::{AsDynHost, Host};

/// Longest attribute name taken on the direct path (Envoy's are at most five segments).
const MAX_SEGMENTS: usize = 8;

/// A compiled direct-path node.
#[derive(Debug)]
pub(super) enum Fast {
    Str(String),
    Int(i64),
    Bool(bool),
    /// One of Envoy's typed leaves (`request.method`), resolved to its memo slot here.
    Leaf(usize),
    /// Any other plain attribute name, split into its segments once, here.
    Attr(Vec<String>),
    /// `a == b` (`negate`: `!=`).
    Eq(Box<Fast>, Box<Fast>, bool),
    /// `leaf == 'lit'` / `'lit' == leaf` (`negate`: `!=`): the commonest condition, evaluated
    /// without recursing into both operands.
    LeafEqStr(usize, String, bool),
    /// `&&` of `LeafEqStr`s (attributegen's `request.url_path == '/items' && request.method ==
    /// 'GET'`), tested in order in one loop rather than by recursing through the `&&` tree.
    LeafEqAll(Vec<LeafTest>),
    And(Box<Fast>, Box<Fast>),
    Or(Box<Fast>, Box<Fast>),
    Not(Box<Fast>),
    Cond(Box<Fast>, Box<Fast>, Box<Fast>),
    /// `target.startsWith(lit)` / `endsWith` / `contains`.
    StrTest(Box<Fast>, StrOp, String),
}

/// One `leaf == 'lit'` (`negate`: `!=`).
#[derive(Debug)]
pub(super) struct LeafTest {
    leaf: usize,
    lit: String,
    negate: bool,
}

/// The tests of `f` when it is a `LeafEqStr` or a chain of them; else `f` back.
fn leaf_tests(f: Fast) -> Result<Vec<LeafTest>, Fast> {
    match f {
        Fast::LeafEqStr(leaf, lit, negate) => Ok(vec![LeafTest { leaf, lit, negate }]),
        Fast::LeafEqAll(tests) => Ok(tests),
        other => Err(other),
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum StrOp {
    StartsWith,
    EndsWith,
    Contains,
}

/// A direct-path value: strings borrowed from the literal or the request's memo where possible,
/// so comparing an attribute with a literal allocates nothing.
#[derive(Debug)]
pub(super) enum Fv<'a> {
    Str(&'a str),
    Shared(Arc<String>),
    Int(i64),
    UInt(u64),
    Bool(bool),
}

impl Fv<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Fv::Str(s) => Some(s),
            Fv::Shared(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub(super) fn into_value(self) -> Value {
        match self {
            Fv::Str(s) => Value::String(Arc::new(s.to_string())),
            Fv::Shared(s) => Value::String(s),
            Fv::Int(i) => Value::Int(i),
            Fv::UInt(u) => Value::UInt(u),
            Fv::Bool(b) => Value::Bool(b),
        }
    }
}

/// The direct form of `e`, when every node is one of the supported shapes.
pub(super) fn compile(e: &IdedExpr) -> Option<Fast> {
    Some(match &e.expr {
        E::Literal(LiteralValue::String(s)) => Fast::Str(s.inner().to_string()),
        E::Literal(LiteralValue::Int(i)) => Fast::Int(*i.inner()),
        E::Literal(LiteralValue::Boolean(b)) => Fast::Bool(*b.inner()),
        E::Ident(_) | E::Select(_) => {
            let segs: Vec<String> = plain_name(&e.expr)?
                .split('.')
                .map(str::to_string)
                .collect();
            if segs.len() > MAX_SEGMENTS {
                return None;
            }
            let names: Vec<&str> = segs.iter().map(String::as_str).collect();
            match leaf_of(&names) {
                Some(i) => Fast::Leaf(i),
                None => Fast::Attr(segs),
            }
        }
        E::Call(c) => {
            let arg = |i: usize| c.args.get(i).and_then(compile).map(Box::new);
            match (c.func_name.as_str(), &c.target, c.args.len()) {
                (op @ (operators::EQUALS | operators::NOT_EQUALS), None, 2) => {
                    let negate = op == operators::NOT_EQUALS;
                    match (*arg(0)?, *arg(1)?) {
                        (Fast::Leaf(i), Fast::Str(lit)) | (Fast::Str(lit), Fast::Leaf(i)) => {
                            Fast::LeafEqStr(i, lit, negate)
                        }
                        (a, b) => Fast::Eq(Box::new(a), Box::new(b), negate),
                    }
                }
                (operators::LOGICAL_AND, None, 2) => {
                    match (leaf_tests(*arg(0)?), leaf_tests(*arg(1)?)) {
                        // `false && x` is false and `x` undecided gives up either way, so testing
                        // the chain left to right and stopping at the first false is exact.
                        (Ok(mut a), Ok(b)) => {
                            a.extend(b);
                            Fast::LeafEqAll(a)
                        }
                        (a, b) => {
                            let back = |t: Result<Vec<LeafTest>, Fast>| {
                                Box::new(match t {
                                    Ok(mut tests) if tests.len() == 1 => {
                                        let LeafTest { leaf, lit, negate } = tests.remove(0);
                                        Fast::LeafEqStr(leaf, lit, negate)
                                    }
                                    Ok(tests) => Fast::LeafEqAll(tests),
                                    Err(f) => f,
                                })
                            };
                            Fast::And(back(a), back(b))
                        }
                    }
                }
                (operators::LOGICAL_OR, None, 2) => Fast::Or(arg(0)?, arg(1)?),
                (operators::LOGICAL_NOT, None, 1) => Fast::Not(arg(0)?),
                (operators::CONDITIONAL, None, 3) => Fast::Cond(arg(0)?, arg(1)?, arg(2)?),
                (name @ ("startsWith" | "endsWith" | "contains"), Some(t), 1) => {
                    let op = match name {
                        "startsWith" => StrOp::StartsWith,
                        "endsWith" => StrOp::EndsWith,
                        _ => StrOp::Contains,
                    };
                    let E::Literal(LiteralValue::String(lit)) = &c.args.first()?.expr else {
                        return None;
                    };
                    Fast::StrTest(Box::new(compile(t)?), op, lit.inner().to_string())
                }
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// Where the direct evaluator reads attributes: the interpreter's resolver, or only the leaves
/// one callback read ([`LeafReads`]).
pub(super) trait Source {
    /// Envoy's typed leaf `i`.
    fn leaf(&self, i: usize) -> Option<LeafVal<'_>>;
    /// Any other plain name, as a CEL value (`None`: give up).
    fn attr(&self, segs: &[String]) -> Option<Value>;
}

impl Source for Attributes<'_> {
    fn leaf(&self, i: usize) -> Option<LeafVal<'_>> {
        self.leaf_scalar(i).map(|s| s.view())
    }

    fn attr(&self, segs: &[String]) -> Option<Value> {
        lookup_segments(self, segs)?.as_ref().try_into().ok()
    }
}

impl<H: Host + AsDynHost + ?Sized> Source for LeafReads<'_, H> {
    fn leaf(&self, i: usize) -> Option<LeafVal<'_>> {
        LeafReads::leaf(self, i)
    }

    fn attr(&self, _: &[String]) -> Option<Value> {
        None
    }
}

/// Evaluates `f`; `None` = not decidable here (the caller runs the interpreter).
pub(super) fn eval<'a, S: Source>(f: &'a Fast, attrs: &'a S) -> Option<Fv<'a>> {
    Some(match f {
        Fast::Str(s) => Fv::Str(s),
        Fast::Int(i) => Fv::Int(*i),
        Fast::Bool(b) => Fv::Bool(*b),
        Fast::Leaf(i) => match attrs.leaf(*i)? {
            LeafVal::Str(s) => Fv::Str(s),
            LeafVal::Int(i) => Fv::Int(i),
            LeafVal::Uint(u) => Fv::UInt(u),
            LeafVal::Bool(b) => Fv::Bool(b),
        },
        Fast::Attr(segs) => match attrs.attr(segs)? {
            Value::String(s) => Fv::Shared(s),
            Value::Int(i) => Fv::Int(i),
            Value::UInt(u) => Fv::UInt(u),
            Value::Bool(b) => Fv::Bool(b),
            _ => return None,
        },
        Fast::Eq(a, b, negate) => {
            let (x, y) = (eval(a, attrs)?, eval(b, attrs)?);
            let equal = match (&x, &y) {
                (Fv::Int(x), Fv::Int(y)) => x == y,
                (Fv::UInt(x), Fv::UInt(y)) => x == y,
                (Fv::Bool(x), Fv::Bool(y)) => x == y,
                // Mixed types (CEL's heterogeneous equality rules): the interpreter decides.
                _ => crate::bytes::bytes_eq(x.as_str()?.as_bytes(), y.as_str()?.as_bytes()),
            };
            Fv::Bool(equal != *negate)
        }
        Fast::LeafEqStr(i, lit, negate) => match attrs.leaf(*i)? {
            LeafVal::Str(v) => {
                Fv::Bool(crate::bytes::bytes_eq(v.as_bytes(), lit.as_bytes()) != *negate)
            }
            // Another type against a string: CEL's heterogeneous equality, the interpreter's.
            _ => return None,
        },
        Fast::LeafEqAll(tests) => {
            for t in tests {
                let LeafVal::Str(v) = attrs.leaf(t.leaf)? else {
                    return None;
                };
                if crate::bytes::bytes_eq(v.as_bytes(), t.lit.as_bytes()) == t.negate {
                    return Some(Fv::Bool(false));
                }
            }
            Fv::Bool(true)
        }
        Fast::And(a, b) => match eval(a, attrs)? {
            Fv::Bool(false) => Fv::Bool(false),
            Fv::Bool(true) => Fv::Bool(as_bool(eval(b, attrs)?)?),
            _ => return None,
        },
        Fast::Or(a, b) => match eval(a, attrs)? {
            Fv::Bool(true) => Fv::Bool(true),
            Fv::Bool(false) => Fv::Bool(as_bool(eval(b, attrs)?)?),
            _ => return None,
        },
        Fast::Not(a) => Fv::Bool(!as_bool(eval(a, attrs)?)?),
        Fast::Cond(c, a, b) => match eval(c, attrs)? {
            Fv::Bool(true) => eval(a, attrs)?,
            Fv::Bool(false) => eval(b, attrs)?,
            _ => return None,
        },
        Fast::StrTest(t, op, lit) => {
            let v = eval(t, attrs)?;
            let s = v.as_str()?;
            Fv::Bool(match op {
                StrOp::StartsWith => s.starts_with(lit.as_str()),
                StrOp::EndsWith => s.ends_with(lit.as_str()),
                StrOp::Contains => s.contains(lit.as_str()),
            })
        }
    })
}

/// [`Attributes::lookup_path`] for pre-split segments (no per-request splitting).
pub(super) fn lookup_segments<'b>(
    attrs: &'b Attributes<'_>,
    segs: &[String],
) -> Option<cel::common::value::CowVal<'b, 'b>> {
    if segs.len() > MAX_SEGMENTS {
        let v: Vec<&str> = segs.iter().map(String::as_str).collect();
        return attrs.lookup_path(&v);
    }
    let mut buf = [""; MAX_SEGMENTS];
    for (slot, seg) in buf.iter_mut().zip(segs) {
        *slot = seg;
    }
    attrs.lookup_path(buf.get(..segs.len())?)
}

fn as_bool(v: Fv<'_>) -> Option<bool> {
    match v {
        Fv::Bool(b) => Some(b),
        _ => None,
    }
}
