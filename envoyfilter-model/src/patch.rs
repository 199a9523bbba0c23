//! Applying EnvoyFilters to Istio's default chains for one proxy, the way istiod does:
//! * selection and order — `pilot/pkg/model/push_context.go` `initEnvoyFilters` (sort by
//!   priority, then creation time, then `name.namespace`) and `EnvoyFilters(proxy)` (root
//!   namespace first, then the proxy's namespace; workloadSelector ⊆ proxy labels; proxyVersion
//!   and proxy metadata per patch);
//! * the operations — `pilot/pkg/networking/core/v1alpha3/envoyfilter/listener_patch.go`
//!   `patchNetworkFilters` / `patchHTTPFilters` (ADD, INSERT_* and REPLACE in patch order, then a
//!   second pass for REMOVE and MERGE per filter).

use crate::chain::{ChainSet, Context, Filter};
use crate::defaults::{self, Slot};
use crate::load::LoadedSet;
use crate::names;
use crate::resource::{ApplyTo, ConfigPatch, EnvoyFilter, Operation, PatchContext};
use crate::typed_config::{self, ChainKind};
use crate::version::minor_of;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The proxy the chains are built for (the fields of pilot's `model.Proxy` that matter).
#[derive(Debug, Clone, Default)]
pub struct Proxy {
    /// Node metadata `ISTIO_VERSION`, e.g. `1.17.8`.
    pub istio_version: String,
    /// The workload's namespace; `None` applies EnvoyFilters of every namespace (with a note).
    pub namespace: Option<String>,
    /// Workload labels, for `workloadSelector`.
    pub labels: BTreeMap<String, String>,
    /// Raw node metadata strings, for `match.proxy.metadata`.
    pub metadata: BTreeMap<String, String>,
}

impl Proxy {
    pub fn new(istio_version: &str) -> Self {
        Self {
            istio_version: istio_version.to_string(),
            ..Default::default()
        }
    }

    /// From Istio node metadata (the `metadata` object of an Envoy node: `NAMESPACE`, `LABELS`,
    /// and string entries for `match.proxy.metadata`), with the version to model.
    pub fn from_node_metadata(istio_version: &str, metadata: &serde_json::Value) -> Self {
        let mut p = Self::new(istio_version);
        if let Some(m) = metadata.as_object() {
            p.namespace = m
                .get("NAMESPACE")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(labels) = m.get("LABELS").and_then(Value::as_object) {
                for (k, v) in labels {
                    if let Some(s) = v.as_str() {
                        p.labels.insert(k.clone(), s.to_string());
                    }
                }
            }
            for (k, v) in m {
                if let Some(s) = v.as_str() {
                    p.metadata.insert(k.clone(), s.to_string());
                }
            }
        }
        p
    }
}

/// How istiod is set up.
#[derive(Debug, Clone)]
pub struct PatchOptions {
    /// `meshConfig.rootNamespace`.
    pub root_namespace: String,
    /// istiod's revision: objects labelled `istio.io/rev` with another value are ignored
    /// (`pkg/config/model.go` `ObjectInRevision`).
    pub revision: String,
    /// Model an install that kept `telemetry.v2.prometheus.enabled=true`: Istio's own
    /// `stats-filter-1.X` / `tcp-stats-filter-1.X` (null-VM, or native on 1.17) are present,
    /// created before everything else.
    pub with_istio_stats: bool,
}

impl Default for PatchOptions {
    fn default() -> Self {
        Self {
            root_namespace: "istio-system".to_string(),
            revision: "default".to_string(),
            with_istio_stats: false,
        }
    }
}

/// The chains plus what happened on the way.
#[derive(Debug, Clone, Default)]
pub struct Patched {
    pub chains: ChainSet,
    /// Patches skipped and why, filters not modelled, decoding warnings.
    pub notes: Vec<String>,
}

impl Patched {
    /// One line per context and chain: `SIDECAR_INBOUND http: a → b → router`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (label, chains) in [("http", &self.chains.http), ("tcp", &self.chains.network)] {
            for (ctx, filters) in chains.iter() {
                let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
                out.push_str(&format!(
                    "{} {label}: {}\n",
                    context_name(*ctx),
                    names.join(" → ")
                ));
            }
        }
        out
    }
}

/// Fatal problems (a filter the proxy would reject).
#[derive(Debug, Clone)]
pub struct PatchError {
    pub messages: Vec<String>,
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.messages.join("\n"))
    }
}

impl std::error::Error for PatchError {}

const CONTEXTS: [Context; 3] = [
    Context::SidecarInbound,
    Context::SidecarOutbound,
    Context::Gateway,
];

fn context_name(c: Context) -> &'static str {
    match c {
        Context::SidecarInbound => "SIDECAR_INBOUND",
        Context::SidecarOutbound => "SIDECAR_OUTBOUND",
        Context::Gateway => "GATEWAY",
    }
}

/// A patch in application order with the resource it came from.
struct Active<'a> {
    filter: &'a EnvoyFilter,
    patch: &'a ConfigPatch,
}

impl Active<'_> {
    fn origin(&self) -> String {
        format!("{}#{}", self.filter.key(), self.patch.index)
    }
    fn describe(&self) -> String {
        let p = self.patch;
        let mut s = format!(
            "{} configPatches[{}] ({} {}",
            self.filter.key(),
            p.index,
            p.apply_to.as_str(),
            p.operation.as_str()
        );
        if let Some(sub) = p.sub_filter() {
            s.push_str(&format!(" subFilter {sub}"));
        } else if let Some(f) = p.filter_match() {
            s.push_str(&format!(" filter {}", f.name));
        }
        s.push(')');
        s
    }
    fn context_matches(&self, c: Context) -> bool {
        match self.patch.context {
            PatchContext::Any => true,
            PatchContext::SidecarInbound => c == Context::SidecarInbound,
            PatchContext::SidecarOutbound => c == Context::SidecarOutbound,
            PatchContext::Gateway => c == Context::Gateway,
        }
    }
}

/// Builds the chains istiod would send `proxy`.
pub fn build_chains(
    set: &LoadedSet,
    proxy: &Proxy,
    opts: &PatchOptions,
) -> Result<Patched, PatchError> {
    let mut notes = Vec::new();
    let minor = match minor_of(&proxy.istio_version) {
        Some(m) if (13..=17).contains(&m) => m,
        Some(m) => {
            let clamped = m.clamp(13, 17);
            notes.push(format!(
                "proxy version {} is outside 1.13–1.17: modelling Istio 1.{clamped}'s default chains",
                proxy.istio_version
            ));
            clamped
        }
        None => {
            notes.push(format!(
                "proxy version {:?} is not 1.N…: modelling Istio 1.17's default chains; every proxyVersion regex fails on it",
                proxy.istio_version
            ));
            17
        }
    };

    let builtin;
    let mut all: Vec<&EnvoyFilter> = Vec::new();
    if opts.with_istio_stats {
        builtin = crate::render::istio_builtin_stats(minor, &opts.root_namespace, &opts.revision)
            .map_err(|e| PatchError {
            messages: vec![format!("Istio's built-in stats filters: {e}")],
        })?;
        all.extend(builtin.filters.iter());
    }
    let builtin_count = all.len();
    all.extend(set.filters.iter());

    let selected = select_filters(&all, builtin_count, proxy, opts, &mut notes);
    let mut active = Vec::new();
    for f in &selected {
        for p in &f.patches {
            if proxy_match(proxy, p) {
                active.push(Active {
                    filter: f,
                    patch: p,
                });
            }
        }
    }
    for a in &active {
        if !a.patch.apply_to.is_modelled() {
            notes.push(format!(
                "{}: applyTo {} is not modelled; ignored here (istiod would apply it)",
                a.describe(),
                a.patch.apply_to.as_str()
            ));
        } else if let Some(l) = &a.patch.listener {
            let fc = l.filter_chain.as_ref();
            if l.name.is_some()
                || l.port_number.is_some()
                || l.port_name.is_some()
                || fc.is_some_and(|f| {
                    f.name.is_some()
                        || f.sni.is_some()
                        || f.transport_protocol.is_some()
                        || f.destination_port.is_some()
                })
            {
                notes.push(format!(
                    "{}: listener/port/filter-chain matches are not modelled; applied to the one modelled chain per context",
                    a.describe()
                ));
            }
        }
    }

    let mut applied: Vec<bool> = vec![false; active.len()];
    let mut misses: Vec<Vec<String>> = vec![Vec::new(); active.len()];
    let mut chains = ChainSet::default();
    let mut errors = Vec::new();
    for ctx in CONTEXTS {
        let relevant: Vec<usize> = (0..active.len())
            .filter(|&i| active[i].context_matches(ctx))
            .collect();
        let mut run = Run {
            active: &active,
            relevant: &relevant,
            applied: &mut applied,
            misses: &mut misses,
            ctx,
            notes: &mut notes,
        };
        let mut http_chain = defaults::http_chain_network_filters(minor, ctx);
        run.patch_network_filters(&mut http_chain);
        let mut tcp_chain = defaults::tcp_chain_network_filters(minor, ctx);
        run.patch_network_filters(&mut tcp_chain);

        let ext = extension_configs(&active, &relevant);
        let mut http_out = Vec::new();
        for nf in &http_chain {
            match &nf.http_filters {
                Some(hf) if nf.name == names::HCM => {
                    for s in hf {
                        match to_filter(s, ChainKind::Http, &ext, &mut notes) {
                            Ok(f) => http_out.push(f),
                            Err(e) => errors.push(format!("{} HTTP filter {:?}: {e}", context_name(ctx), s.name)),
                        }
                    }
                }
                _ => notes.push(format!(
                    "{}: network filter {:?} ({}) sits in the HTTP filter chain, outside the modelled chains",
                    context_name(ctx),
                    nf.name,
                    if nf.origin.is_empty() { "istio" } else { &nf.origin }
                )),
            }
        }
        let mut net_out = Vec::new();
        for s in &tcp_chain {
            match to_filter(s, ChainKind::Network, &BTreeMap::new(), &mut notes) {
                Ok(f) => net_out.push(f),
                Err(e) => errors.push(format!(
                    "{} network filter {:?}: {e}",
                    context_name(ctx),
                    s.name
                )),
            }
        }
        chains.http.insert(ctx, http_out);
        chains.network.insert(ctx, net_out);
    }
    for (i, a) in active.iter().enumerate() {
        if a.patch.apply_to.is_modelled()
            && a.patch.apply_to != ApplyTo::ExtensionConfig
            && !applied[i]
        {
            let why = if misses[i].is_empty() {
                "no listener context matched".to_string()
            } else {
                misses[i].join("; ")
            };
            notes.push(format!(
                "{} matched proxy {} but was not applied: {why}",
                a.describe(),
                proxy.istio_version
            ));
        }
    }
    if errors.is_empty() {
        Ok(Patched { chains, notes })
    } else {
        Err(PatchError { messages: errors })
    }
}

/// Root-namespace filters first, then the proxy's namespace; each group in istiod's sort order.
fn select_filters<'a>(
    all: &[&'a EnvoyFilter],
    builtin_count: usize,
    proxy: &Proxy,
    opts: &PatchOptions,
    notes: &mut Vec<String>,
) -> Vec<&'a EnvoyFilter> {
    let mut root = Vec::new();
    let mut local = Vec::new();
    for (i, f) in all.iter().enumerate() {
        if let Some(rev) = f.labels.get("istio.io/rev") {
            if *rev != opts.revision {
                notes.push(format!(
                    "{}: label istio.io/rev={rev} does not match istiod revision {:?}; istiod ignores it",
                    f.key(),
                    opts.revision
                ));
                continue;
            }
        }
        let in_root = f.namespace == opts.root_namespace;
        let in_proxy_ns = match &proxy.namespace {
            Some(ns) => *ns == f.namespace,
            None => true,
        };
        if !in_root && !in_proxy_ns {
            if let Some(ns) = &proxy.namespace {
                notes.push(format!(
                    "{}: not in the root namespace {:?} nor the proxy's namespace {ns:?}; not applied",
                    f.key(),
                    opts.root_namespace
                ));
            }
            continue;
        }
        if let Some(sel) = &f.workload_selector {
            if !sel.iter().all(|(k, v)| proxy.labels.get(k) == Some(v)) {
                notes.push(format!(
                    "{}: workloadSelector {sel:?} does not select this proxy",
                    f.key()
                ));
                continue;
            }
        }
        // Built-ins (Istio's own filters) were created at install time, before anything loaded.
        let created_first = i < builtin_count;
        if in_root {
            root.push((*f, created_first));
        } else {
            local.push((*f, created_first));
        }
    }
    if proxy.namespace.is_none() && !local.is_empty() {
        notes.push(
            "proxy namespace unknown: EnvoyFilters of every namespace were applied after the root namespace's".to_string(),
        );
    }
    let key = |f: &EnvoyFilter, builtin: bool| {
        (
            f.priority,
            // creation: builtins, then timestamped objects by timestamp, then load order.
            if builtin {
                0
            } else if f.creation_timestamp.is_some() {
                1
            } else {
                2
            },
            f.creation_timestamp.clone().unwrap_or_default(),
            if f.creation_timestamp.is_some() {
                0
            } else {
                f.order
            },
            format!("{}.{}", f.name, f.namespace),
        )
    };
    root.sort_by_key(|(f, b)| key(f, *b));
    local.sort_by_key(|(f, b)| key(f, *b));
    root.into_iter().chain(local).map(|(f, _)| f).collect()
}

/// `proxyMatch` in pilot/pkg/model/envoyfilter.go.
fn proxy_match(proxy: &Proxy, p: &ConfigPatch) -> bool {
    p.version_matcher.matches(&proxy.istio_version)
        && p.proxy_metadata
            .iter()
            .all(|(k, v)| proxy.metadata.get(k) == Some(v))
}

struct Run<'r, 'a> {
    active: &'r [Active<'a>],
    relevant: &'r [usize],
    applied: &'r mut [bool],
    misses: &'r mut [Vec<String>],
    ctx: Context,
    notes: &'r mut Vec<String>,
}

fn slot_from_value(v: &Value, origin: String) -> Slot {
    let obj = v.as_object();
    let get = |k: &str| {
        obj.and_then(|o| crate::json::field(o, k))
            .map(|(v, _)| v.clone())
    };
    Slot {
        name: obj
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        typed_config: get("typed_config"),
        config_discovery: get("config_discovery"),
        fixed: None,
        origin,
        http_filters: None,
    }
}

/// First position whose filter name matches (`nameMatches`).
fn find(list: &[Slot], match_name: &str) -> Option<usize> {
    list.iter()
        .position(|s| names::name_matches(match_name, &s.name))
}

impl Run<'_, '_> {
    fn miss(&mut self, i: usize, why: String) {
        self.misses[i].push(format!("{}: {why}", context_name(self.ctx)));
    }

    /// `patchNetworkFilters` for one filter chain.
    fn patch_network_filters(&mut self, list: &mut Vec<Slot>) {
        for &i in self.relevant {
            let a = &self.active[i];
            if a.patch.apply_to != ApplyTo::NetworkFilter {
                continue;
            }
            let v = a.patch.value.clone().unwrap_or(Value::Null);
            let anchor = a.patch.filter_match().map(|m| m.name.clone());
            let outcome = insert_op(list, a.patch.operation, anchor.as_deref(), || {
                slot_from_value(&v, a.origin())
            });
            self.record(i, outcome, anchor.as_deref());
        }
        // Second pass: REMOVE / MERGE on each filter; then HTTP patches inside each HCM.
        let mut removed: Vec<String> = Vec::new();
        for nf in list.iter_mut() {
            let mut is_removed = false;
            for &i in self.relevant {
                let a = &self.active[i];
                if a.patch.apply_to != ApplyTo::NetworkFilter {
                    continue;
                }
                if let Some(m) = a.patch.filter_match() {
                    if !names::name_matches(&m.name, &nf.name) {
                        continue;
                    }
                }
                match a.patch.operation {
                    Operation::Remove => {
                        self.applied[i] = true;
                        is_removed = true;
                        break;
                    }
                    Operation::Merge => {
                        self.merge(i, nf);
                    }
                    _ => {}
                }
            }
            if is_removed {
                removed.push(nf.name.clone());
                continue;
            }
            if nf.name == names::HCM {
                if let Some(mut hf) = nf.http_filters.take() {
                    self.patch_http_filters(&mut hf, nf);
                    nf.http_filters = Some(hf);
                }
            }
        }
        // pilot removes by name: every filter carrying a removed name goes.
        list.retain(|s| !removed.contains(&s.name));
    }

    /// `patchHTTPFilters` for one HTTP connection manager.
    fn patch_http_filters(&mut self, list: &mut Vec<Slot>, hcm: &Slot) {
        for &i in self.relevant {
            let a = &self.active[i];
            if a.patch.apply_to != ApplyTo::HttpFilter {
                continue;
            }
            if let Some(m) = a.patch.filter_match() {
                if !names::name_matches(&m.name, &hcm.name) {
                    self.miss(
                        i,
                        format!(
                            "network filter match {:?} is not the HTTP connection manager",
                            m.name
                        ),
                    );
                    continue;
                }
            }
            let v = a.patch.value.clone().unwrap_or(Value::Null);
            let anchor = a.patch.sub_filter().map(str::to_string);
            let outcome = insert_op(list, a.patch.operation, anchor.as_deref(), || {
                slot_from_value(&v, a.origin())
            });
            self.record(i, outcome, anchor.as_deref());
        }
        let mut removed: Vec<String> = Vec::new();
        for hf in list.iter_mut() {
            for &i in self.relevant {
                let a = &self.active[i];
                if a.patch.apply_to != ApplyTo::HttpFilter {
                    continue;
                }
                if a.patch
                    .filter_match()
                    .is_some_and(|m| !names::name_matches(&m.name, &hcm.name))
                {
                    continue;
                }
                if let Some(sub) = a.patch.sub_filter() {
                    if !names::name_matches(sub, &hf.name) {
                        continue;
                    }
                }
                match a.patch.operation {
                    Operation::Remove => {
                        self.applied[i] = true;
                        removed.push(hf.name.clone());
                        break;
                    }
                    Operation::Merge => self.merge(i, hf),
                    _ => {}
                }
            }
        }
        list.retain(|s| !removed.contains(&s.name));
    }

    fn record(&mut self, i: usize, outcome: Outcome, anchor: Option<&str>) {
        match outcome {
            Outcome::Applied => self.applied[i] = true,
            Outcome::NotThisPass => {}
            Outcome::AnchorMissing => self.miss(
                i,
                format!(
                    "no filter named {:?} in the chain at this point",
                    anchor.unwrap_or("")
                ),
            ),
            Outcome::ReplaceWithoutMatch => self.miss(
                i,
                "REPLACE without a filter/subFilter match does nothing".to_string(),
            ),
        }
    }

    /// MERGE (`patchHTTPFilter` / `patchNetworkFilter`): rename, then merge typed configs.
    fn merge(&mut self, i: usize, target: &mut Slot) {
        let a = &self.active[i];
        let user = match a.patch.value.as_ref().and_then(Value::as_object) {
            Some(u) => u,
            None => return,
        };
        let Some(existing) = target.typed_config.clone() else {
            self.miss(
                i,
                format!(
                    "{:?} has no typed_config; istiod skips the MERGE",
                    target.name
                ),
            );
            return;
        };
        self.applied[i] = true;
        if let Some(n) = user.get("name").and_then(Value::as_str) {
            if !n.is_empty() {
                target.name = names::canonical(n).to_string();
            }
        }
        if let Some((utc, _)) = crate::json::field(user, "typed_config") {
            match merge_any(&existing, utc) {
                Some(merged) => {
                    target.typed_config = Some(merged);
                    target.fixed = None;
                    target.origin = a.origin();
                }
                None => self.notes.push(format!(
                    "{}: MERGE of a TypedStruct into a typed message (or the reverse) fails in istiod (MergeAnyWithAny) and leaves {:?} unchanged",
                    a.describe(),
                    target.name
                )),
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Applied,
    NotThisPass,
    AnchorMissing,
    ReplaceWithoutMatch,
}

/// ADD / INSERT_FIRST / INSERT_AFTER / INSERT_BEFORE / REPLACE on a filter list.
fn insert_op(
    list: &mut Vec<Slot>,
    op: Operation,
    anchor: Option<&str>,
    make: impl FnOnce() -> Slot,
) -> Outcome {
    match op {
        Operation::Add => list.push(make()),
        Operation::InsertFirst => list.insert(0, make()),
        Operation::InsertAfter => match anchor {
            None => list.push(make()),
            Some(name) => match find(list, name) {
                Some(pos) => list.insert(pos + 1, make()),
                None => return Outcome::AnchorMissing,
            },
        },
        Operation::InsertBefore => match anchor {
            None => list.insert(0, make()),
            Some(name) => match find(list, name) {
                Some(pos) => list.insert(pos, make()),
                None => return Outcome::AnchorMissing,
            },
        },
        Operation::Replace => match anchor {
            None => return Outcome::ReplaceWithoutMatch,
            Some(name) => match find(list, name) {
                Some(pos) => list[pos] = make(),
                None => return Outcome::AnchorMissing,
            },
        },
        Operation::Remove | Operation::Merge => return Outcome::NotThisPass,
    }
    Outcome::Applied
}

/// `MergeAnyWithAny` on the JSON forms. Same representation: a TypedStruct merge replaces the
/// top-level keys of `value` (proto map-entry semantics), a typed message merges recursively
/// (messages merge, repeated fields append, scalars and Any values are replaced). Mixed forms
/// fail in istiod, which then keeps the original.
fn merge_any(existing: &Value, user: &Value) -> Option<Value> {
    let e = existing.as_object()?;
    let u = user.as_object()?;
    let is_ts = |m: &Map<String, Value>| {
        m.get("@type").and_then(Value::as_str).is_some_and(|t| {
            matches!(
                typed_config::type_name(t),
                "udpa.type.v1.TypedStruct" | "xds.type.v3.TypedStruct"
            )
        })
    };
    match (is_ts(e), is_ts(u)) {
        (true, true) => {
            let mut out = e.clone();
            if let Some(t) = u.get("type_url").or_else(|| u.get("typeUrl")) {
                out.insert("type_url".into(), t.clone());
                out.remove("typeUrl");
            }
            let mut value = e
                .get("value")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Some(uv) = u.get("value").and_then(Value::as_object) {
                for (k, v) in uv {
                    value.insert(k.clone(), v.clone());
                }
            }
            out.insert("value".into(), Value::Object(value));
            Some(Value::Object(out))
        }
        (false, false) => {
            let mut out = existing.clone();
            let mut user = user.clone();
            if let Some(m) = user.as_object_mut() {
                m.remove("@type"); // pilot swaps the user's type URL for the filter's
            }
            deep_merge(&mut out, &user);
            Some(out)
        }
        _ => None,
    }
}

fn deep_merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) if !s.contains_key("@type") => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(s)) => d.extend(s.iter().cloned()),
        (d, s) => *d = s.clone(),
    }
}

/// EXTENSION_CONFIG ADD values for this context, by name (ECDS resources).
fn extension_configs(
    active: &[Active<'_>],
    relevant: &[usize],
) -> BTreeMap<String, (Value, String)> {
    let mut out = BTreeMap::new();
    for &i in relevant {
        let a = &active[i];
        if a.patch.apply_to == ApplyTo::ExtensionConfig && a.patch.operation == Operation::Add {
            if let (Some(name), Some(tc)) = (
                a.patch.value_name(),
                a.patch
                    .value
                    .as_ref()
                    .and_then(|v| v.as_object())
                    .and_then(|o| crate::json::field(o, "typed_config"))
                    .map(|(v, _)| v.clone()),
            ) {
                out.insert(name.to_string(), (tc, a.origin()));
            }
        }
    }
    out
}

fn to_filter(
    s: &Slot,
    chain: ChainKind,
    ext: &BTreeMap<String, (Value, String)>,
    notes: &mut Vec<String>,
) -> Result<Filter, String> {
    let kind = if let Some(k) = &s.fixed {
        k.clone()
    } else {
        let tc = match (&s.typed_config, &s.config_discovery) {
            (Some(tc), _) => tc.clone(),
            (None, Some(_)) => match ext.get(&s.name) {
                Some((tc, _)) => tc.clone(),
                None => {
                    return Err(format!(
                        "config_discovery names {:?} but no EXTENSION_CONFIG ADD patch provides it for this proxy; Envoy would wait for the config",
                        s.name
                    ))
                }
            },
            (None, None) => return Err("no typed_config".to_string()),
        };
        let d = typed_config::decode(&tc, &format!("{}.typed_config", s.origin), chain)
            .map_err(|e| format!("{}: {}", e.path, e.message))?;
        notes.extend(d.warnings);
        d.kind
    };
    Ok(Filter {
        name: s.name.clone(),
        kind,
        origin: s.origin.clone(),
    })
}
