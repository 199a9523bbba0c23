//! `matches()` on `regex-lite` instead of cel's `regex` feature (which costs ~811 KB of Unicode
//! tables in the wasm, crates.md §2). regex-lite understands the POSIX classes Istio's configs
//! use (`[[:alnum:]]`, `operation.json`). Semantics follow CEL/RE2: an unanchored search; an
//! invalid pattern is an evaluation error.
//!
//! Compiled patterns live in one bounded cache shared by every expression: literal patterns are
//! compiled at configure time ([`precompile_literals`]), others on first use.

use cel::common::ast::{Expr as Ast, LiteralValue};
use cel::common::types::{CelBool, CelString};
use cel::{Env, ExecutionError, IdedExpr};
use regex_lite::Regex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Patterns kept compiled. Literal patterns are few; dynamic ones beyond this are compiled
/// per call rather than growing memory without bound.
const MAX_CACHED: usize = 512;
/// Longest pattern accepted.
const MAX_PATTERN_LEN: usize = 4096;

type Cache = Mutex<HashMap<String, Result<Arc<Regex>, String>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn build(pattern: &str) -> Result<Arc<Regex>, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!("pattern longer than {MAX_PATTERN_LEN} bytes"));
    }
    regex_lite::RegexBuilder::new(pattern)
        .build()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn compiled(pattern: &str) -> Result<Arc<Regex>, String> {
    let Ok(mut cache) = cache().lock() else {
        return build(pattern);
    };
    if let Some(hit) = cache.get(pattern) {
        return hit.clone();
    }
    let built = build(pattern);
    if cache.len() < MAX_CACHED {
        cache.insert(pattern.to_string(), built.clone());
    }
    built
}

fn matches(this: &CelString<'_>, re: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    match compiled(re.inner()) {
        Ok(regex) => Ok(CelBool::from(regex.is_match(this.inner()))),
        Err(err) => Err(ExecutionError::FunctionError {
            function: "matches".to_string(),
            message: format!("'{}' not a valid regex: {err}", re.inner()),
        }),
    }
}

/// Declares `matches(string, string)` and `string.matches(string)`. Declaring into a fresh
/// `Env::stdlib()` (without cel's `regex` feature) cannot collide; a failure would only mean
/// `matches` stays undeclared, so it is logged, not unwrapped.
pub(super) fn register(env: &mut Env) {
    if let Err(e) = cel::add_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>, id = "matches")
    {
        log::error!("cannot declare matches(): {e:?}");
    }
    if let Err(e) =
        cel::add_member_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>)
    {
        log::error!("cannot declare string.matches(): {e:?}");
    }
}

/// Walks the AST and warms the cache with every literal `matches` pattern.
pub(super) fn precompile_literals(expr: &IdedExpr) {
    let mut stack: Vec<&IdedExpr> = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.expr {
            Ast::Call(call) => {
                if call.func_name == "matches" {
                    if let Some(IdedExpr {
                        expr: Ast::Literal(LiteralValue::String(p)),
                        ..
                    }) = call.args.last()
                    {
                        let _ = compiled(p.inner());
                    }
                }
                stack.extend(call.target.as_deref());
                stack.extend(call.args.iter());
            }
            Ast::Select(s) => stack.push(&s.operand),
            Ast::List(l) => stack.extend(l.elements.iter()),
            Ast::Comprehension(c) => {
                stack.push(&c.iter_range);
                stack.push(&c.accu_init);
                stack.push(&c.loop_cond);
                stack.push(&c.loop_step);
                stack.push(&c.result);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
pub(super) fn is_cached(pattern: &str) -> bool {
    cache()
        .lock()
        .map(|c| c.contains_key(pattern))
        .unwrap_or(false)
}
