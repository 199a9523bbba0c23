//! The compiled schema: which metrics exist, which tags each one carries and which dimension
//! slot feeds each tag. Built once per configure from [`crate::config::PluginConfig`] with
//! Istio's algorithm (`initializeDimensions`, `extensions/stats/plugin.cc:284-475`;
//! stats-spec §4.1–4.2).

pub mod standard;

use crate::config::{DefinitionType, PluginConfig};
use crate::expressions::{self, Program};
use crate::series::MetricKind;
use standard::{
    Factory, ValueSource, COUNT_STANDARD_LABELS, PROTO_GRPC, PROTO_HTTP, STANDARD_TAGS,
};

/// Istio's hard-coded prefix (`stat_prefix` is ignored, `plugin.cc:442-444`).
pub const STAT_PREFIX: &str = "istio_";

/// One emitted tag of a metric: its name and the dimension slot that supplies the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub slot: usize,
}

/// A metric ready to be resolved per dimension vector (`StatGen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatGen {
    /// Full metric name, e.g. `istio_requests_total`.
    pub metric: String,
    pub kind: MetricKind,
    pub value: ValueSource,
    pub protocols: u8,
    pub recurrent: bool,
    pub tags: Vec<Tag>,
}

/// A CEL dimension expression owning slot `25 + index`.
#[derive(Debug)]
pub struct DimensionExpr {
    pub text: String,
    pub program: Program,
    /// Reads only `node.*`: evaluated once at configure.
    pub node_only: bool,
}

/// A `definitions[].value` expression.
#[derive(Debug)]
pub struct ValueExpr {
    pub program: Program,
    /// Reads only `node.*` (or is a literal): evaluated once at configure.
    pub node_only: bool,
}

#[derive(Debug)]
pub struct Schema {
    pub stat_gens: Vec<StatGen>,
    /// Deduplicated by exact text (`addStringExpression`).
    pub dimension_exprs: Vec<DimensionExpr>,
    /// One per surviving definition (`addIntExpression`, not deduplicated).
    pub value_exprs: Vec<ValueExpr>,
    pub field_separator: String,
    pub value_separator: String,
}

impl Schema {
    /// Number of dimension slots per report: 25 standard + one per expression.
    pub fn slot_count(&self) -> usize {
        COUNT_STANDARD_LABELS + self.dimension_exprs.len()
    }
}

/// Per-factory tag state: the ordered tag names and, per name, `Some(slot)` or `None` (removed).
struct FactoryState {
    factory: Factory,
    tags: Vec<(String, Option<usize>)>,
}

impl FactoryState {
    fn index_of(&self, tag: &str) -> Option<usize> {
        self.tags.iter().position(|(t, _)| t == tag)
    }
}

struct Builder {
    dimension_exprs: Vec<DimensionExpr>,
    value_exprs: Vec<ValueExpr>,
    warnings: Vec<String>,
}

impl Builder {
    /// `addStringExpression`: one slot per distinct text; `None` (logged) when it does not
    /// compile.
    fn string_expression(&mut self, text: &str) -> Option<usize> {
        if let Some(i) = self.dimension_exprs.iter().position(|e| e.text == text) {
            return Some(i);
        }
        match expressions::compile(text) {
            Ok(program) => {
                self.dimension_exprs.push(DimensionExpr {
                    text: text.to_string(),
                    program,
                    node_only: expressions::is_node_only(text),
                });
                Some(self.dimension_exprs.len() - 1)
            }
            Err(e) => {
                self.warnings
                    .push(format!("cannot create an expression: {text}: {e}"));
                None
            }
        }
    }
}

/// Builds the schema; the warnings are to be logged by the caller.
pub fn build(config: &PluginConfig) -> (Schema, Vec<String>) {
    let mut b = Builder {
        dimension_exprs: Vec::new(),
        value_exprs: Vec::new(),
        warnings: Vec::new(),
    };
    let mut factories: Vec<FactoryState> = standard::standard_factories()
        .into_iter()
        .map(|factory| {
            let tags = STANDARD_TAGS
                .iter()
                .take(factory.count_labels)
                .enumerate()
                .map(|(i, t)| (t.to_string(), Some(i)))
                .collect();
            FactoryState { factory, tags }
        })
        .collect();

    // definitions (plugin.cc:307-346): a value that does not compile stops the walk.
    for (i, def) in config.definitions.iter().enumerate() {
        let program = match expressions::compile(&def.value) {
            Ok(p) => p,
            Err(e) => {
                b.warnings.push(format!(
                    "definitions[{i}].value: failed to construct expression {:?}: {e}; this and the following definitions are ignored",
                    def.value
                ));
                break;
            }
        };
        b.value_exprs.push(ValueExpr {
            program,
            node_only: expressions::is_node_only(&def.value),
        });
        let kind = match def.kind {
            DefinitionType::Counter => MetricKind::Counter,
            DefinitionType::Gauge => MetricKind::Gauge,
            DefinitionType::Histogram => MetricKind::Histogram,
        };
        let value = ValueSource::Custom(b.value_exprs.len() - 1);
        // Overwriting a standard factory keeps its tags but replaces everything else.
        match factories.iter_mut().find(|f| f.factory.name == def.name) {
            Some(existing) => {
                existing.factory.kind = kind;
                existing.factory.value = value;
                existing.factory.recurrent = false;
                existing.factory.protocols = PROTO_HTTP | PROTO_GRPC;
            }
            None => factories.push(FactoryState {
                factory: Factory {
                    name: def.name.clone(),
                    kind,
                    value,
                    protocols: PROTO_HTTP | PROTO_GRPC,
                    count_labels: 0,
                    recurrent: false,
                },
                tags: Vec::new(),
            }),
        }
    }

    apply_overrides(config, &mut factories, &mut b);

    let stat_gens = factories
        .into_iter()
        .map(|f| StatGen {
            metric: format!("{STAT_PREFIX}{}", f.factory.name),
            kind: f.factory.kind,
            value: f.factory.value,
            protocols: f.factory.protocols,
            recurrent: f.factory.recurrent,
            tags: f
                .tags
                .into_iter()
                .filter_map(|(name, slot)| slot.map(|slot| Tag { name, slot }))
                .collect(),
        })
        .collect();
    let schema = Schema {
        stat_gens,
        dimension_exprs: b.dimension_exprs,
        value_exprs: b.value_exprs,
        field_separator: config.field_separator.clone(),
        value_separator: config.value_separator.clone(),
    };
    (schema, b.warnings)
}

/// The `metrics[]` walk (plugin.cc:349-426), including its stop-at-first-bad-element rules.
fn apply_overrides(config: &PluginConfig, factories: &mut Vec<FactoryState>, b: &mut Builder) {
    'entries: for (i, entry) in config.metrics.iter().enumerate() {
        if entry.dimensions_not_object {
            b.warnings.push(format!(
                "metrics[{i}]: failed to parse 'dimensions'; this and the following metrics entries are ignored"
            ));
            break;
        }
        let mut f = 0;
        while f < factories.len() {
            let Some(state) = factories.get_mut(f) else {
                break;
            };
            if !entry.name.is_empty() && entry.name != state.factory.name {
                f += 1;
                continue;
            }
            if entry.drop {
                factories.remove(f);
                continue;
            }
            for tag in &entry.tags_to_remove {
                if let Some(k) = state.index_of(tag) {
                    if let Some(t) = state.tags.get_mut(k) {
                        t.1 = None;
                    }
                }
            }
            if entry.tags_to_remove_error {
                b.warnings.push(format!(
                    "metrics[{i}].tags_to_remove: failed to parse; this and the following metrics entries are ignored"
                ));
                break 'entries;
            }
            for (tag, text) in &entry.dimensions {
                let value = b.string_expression(text).map(|e| COUNT_STANDARD_LABELS + e);
                let Some(state) = factories.get_mut(f) else {
                    break 'entries;
                };
                match state.index_of(tag) {
                    Some(k) => {
                        if let Some(t) = state.tags.get_mut(k) {
                            t.1 = value;
                        }
                    }
                    None => state.tags.push((tag.clone(), value)),
                }
            }
            if entry.dimensions_error {
                b.warnings.push(format!(
                    "metrics[{i}].dimensions: failed to parse a value; this and the following metrics entries are ignored"
                ));
                break 'entries;
            }
            f += 1;
        }
    }
}

#[cfg(test)]
mod tests;
