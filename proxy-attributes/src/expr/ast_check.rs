//! A post-parse check of the AST, done iteratively (so it cannot itself overflow the stack):
//! * depth ≤ the limit: the interpreter evaluates, and Rust drops, the AST recursively, and a
//!   wasm32 stack is 1 MiB;
//! * no node the `cel` 0.15 interpreter would `panic!` on (`Expr::Unspecified`, a struct field
//!   entry inside a map literal), and no message construction (`T{f: v}`: Envoy's attribute
//!   vocabulary has no message types to build).

use cel::common::ast::{EntryExpr, Expr};
use cel::IdedExpr;

pub(super) fn check(root: &IdedExpr, max_depth: usize) -> Result<(), String> {
    let mut stack: Vec<(&IdedExpr, usize)> = vec![(root, 1)];
    while let Some((e, depth)) = stack.pop() {
        if depth > max_depth {
            return Err(format!("expression nests deeper than {max_depth} levels"));
        }
        let next = depth + 1;
        match &e.expr {
            Expr::Unspecified => return Err("incomplete expression".to_string()),
            Expr::Struct(s) => {
                return Err(format!(
                    "message construction ({}{{…}}) is not supported",
                    s.type_name
                ))
            }
            Expr::Call(call) => {
                stack.extend(call.target.as_deref().map(|t| (t, next)));
                stack.extend(call.args.iter().map(|a| (a, next)));
            }
            Expr::Select(s) => stack.push((&s.operand, next)),
            Expr::List(l) => stack.extend(l.elements.iter().map(|x| (x, next))),
            Expr::Map(m) => {
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            stack.push((&me.key, next));
                            stack.push((&me.value, next));
                        }
                        EntryExpr::StructField(_) => {
                            return Err("field initialiser inside a map literal".to_string())
                        }
                    }
                }
            }
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    stack.push((part, next));
                }
            }
            Expr::Ident(_) | Expr::Literal(_) => {}
        }
    }
    Ok(())
}
