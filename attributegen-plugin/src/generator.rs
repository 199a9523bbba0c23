//! Compiled generators and their evaluation (Istio `plugin.cc` `AttributeGenerator`/`Match`).

use crate::config::{Phase, PluginConfig};
use proxy_attributes::expr::{Attributes, Expr, LeafReads, Value};
use proxy_attributes::host::{AsDynHost, Host};
use std::cell::OnceCell;
use std::fmt;

/// One `match` entry: `None` condition = the empty condition, which always matches.
#[derive(Debug)]
pub struct Match {
    pub condition: Option<Expr>,
    pub value: String,
}

/// One `attributes[]` entry, compiled.
#[derive(Debug)]
pub struct Generator {
    pub phase: Phase,
    pub output_attribute: String,
    pub matches: Vec<Match>,
}

/// A condition that did not compile: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub attribute_index: usize,
    pub match_index: usize,
    pub output_attribute: String,
    pub condition: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Istio's text, plus the JSON path of the offending field.
        write!(
            f,
            "Cannot create expression: <{}> for {} result:{} (attributes[{}].match[{}].condition)",
            self.condition,
            self.output_attribute,
            self.reason,
            self.attribute_index,
            self.match_index
        )
    }
}

/// Why evaluating a generator failed (counted as a runtime error, nothing written).
#[derive(Debug, Clone, PartialEq)]
pub enum EvalFailure {
    /// The expression raised an error (missing attribute, type error, bad regex, …).
    Error { match_index: usize, message: String },
    /// The expression returned something other than a bool (Istio: "did not return a bool").
    NotBool { match_index: usize, result: String },
}

impl fmt::Display for EvalFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalFailure::Error {
                match_index,
                message,
            } => write!(f, "match[{match_index}] evaluation error: {message}"),
            EvalFailure::NotBool {
                match_index,
                result,
            } => write!(f, "match[{match_index}] did not return a bool: {result}"),
        }
    }
}

/// Compiles every condition once. Istio compiles in order and stops at the first bad one,
/// rejecting the whole configuration (`initAttributeGen` returns false).
pub fn compile(config: &PluginConfig) -> Result<Vec<Generator>, ConfigError> {
    let mut out = Vec::with_capacity(config.attributes.len());
    for (ai, ag) in config.attributes.iter().enumerate() {
        let mut matches = Vec::with_capacity(ag.matches.len());
        for (mi, m) in ag.matches.iter().enumerate() {
            let condition = if m.condition.is_empty() {
                None
            } else {
                match Expr::compile(&m.condition) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        return Err(ConfigError {
                            attribute_index: ai,
                            match_index: mi,
                            output_attribute: ag.output_attribute.clone(),
                            condition: m.condition.clone(),
                            reason: e.message,
                        })
                    }
                }
            };
            matches.push(Match {
                condition,
                value: m.value.clone(),
            });
        }
        out.push(Generator {
            phase: ag.phase,
            output_attribute: ag.output_attribute.clone(),
            matches,
        });
    }
    Ok(out)
}

impl Generator {
    /// Matches in order, the first true wins (`Ok(Some(value))`); no match is `Ok(None)`; the
    /// first error or non-bool result aborts the generator (later matches are not tried).
    ///
    /// A condition is decided from the leaves in `reads` where the direct evaluator can;
    /// otherwise, and for every condition once that happened in this callback, by the
    /// interpreter on `attrs` (created on first need from `reads`, so nothing is read twice).
    pub fn evaluate<'h, H: Host + AsDynHost + ?Sized>(
        &self,
        reads: &LeafReads<'h, H>,
        attrs: &OnceCell<Attributes<'h>>,
    ) -> Result<Option<&str>, EvalFailure> {
        for (i, m) in self.matches.iter().enumerate() {
            let Some(expr) = &m.condition else {
                return Ok(Some(&m.value));
            };
            if attrs.get().is_none() {
                match expr.test_leaves(reads) {
                    Some(true) => return Ok(Some(&m.value)),
                    Some(false) => continue,
                    None => {}
                }
            }
            if interpret(expr, i, reads, attrs)? {
                return Ok(Some(&m.value));
            }
        }
        Ok(None)
    }
}

/// A condition by the interpreter (the rare path: kept out of line so the common one stays
/// small).
#[cold]
#[inline(never)]
fn interpret<'h, H: Host + AsDynHost + ?Sized>(
    expr: &Expr,
    match_index: usize,
    reads: &LeafReads<'h, H>,
    attrs: &OnceCell<Attributes<'h>>,
) -> Result<bool, EvalFailure> {
    match expr.eval(attrs.get_or_init(|| reads.to_attributes())) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(EvalFailure::NotBool {
            match_index,
            result: format!("{other:?}"),
        }),
        Err(e) => Err(EvalFailure::Error {
            match_index,
            message: e.to_string(),
        }),
    }
}
