//! The EnvoyFilter resource (`networking.istio.io/v1alpha3`, kind `EnvoyFilter`) parsed and
//! validated the way istiod's admission validation (`pkg/config/validation` `ValidateEnvoyFilter`)
//! and `istioctl analyze` (IST0151/IST0155) see it. Every problem names the resource
//! (`namespace/name`), the patch index and the field path.

use crate::json::{field, is_known_field, join};
use crate::names;
use crate::typed_config::{self, ChainKind};
use crate::version::VersionMatcher;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// `configPatches[].applyTo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplyTo {
    Listener,
    FilterChain,
    NetworkFilter,
    HttpFilter,
    RouteConfiguration,
    VirtualHost,
    HttpRoute,
    Cluster,
    ExtensionConfig,
    Bootstrap,
    ListenerFilter,
}

impl ApplyTo {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "LISTENER" => Self::Listener,
            "FILTER_CHAIN" => Self::FilterChain,
            "NETWORK_FILTER" => Self::NetworkFilter,
            "HTTP_FILTER" => Self::HttpFilter,
            "ROUTE_CONFIGURATION" => Self::RouteConfiguration,
            "VIRTUAL_HOST" => Self::VirtualHost,
            "HTTP_ROUTE" => Self::HttpRoute,
            "CLUSTER" => Self::Cluster,
            "EXTENSION_CONFIG" => Self::ExtensionConfig,
            "BOOTSTRAP" => Self::Bootstrap,
            "LISTENER_FILTER" => Self::ListenerFilter,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listener => "LISTENER",
            Self::FilterChain => "FILTER_CHAIN",
            Self::NetworkFilter => "NETWORK_FILTER",
            Self::HttpFilter => "HTTP_FILTER",
            Self::RouteConfiguration => "ROUTE_CONFIGURATION",
            Self::VirtualHost => "VIRTUAL_HOST",
            Self::HttpRoute => "HTTP_ROUTE",
            Self::Cluster => "CLUSTER",
            Self::ExtensionConfig => "EXTENSION_CONFIG",
            Self::Bootstrap => "BOOTSTRAP",
            Self::ListenerFilter => "LISTENER_FILTER",
        }
    }

    /// Whether the chain model applies this kind of patch (the others are reported, not applied).
    pub fn is_modelled(self) -> bool {
        matches!(
            self,
            Self::HttpFilter | Self::NetworkFilter | Self::ExtensionConfig
        )
    }
}

/// `match.context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchContext {
    Any,
    SidecarInbound,
    SidecarOutbound,
    Gateway,
}

impl PatchContext {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ANY" => Self::Any,
            "SIDECAR_INBOUND" => Self::SidecarInbound,
            "SIDECAR_OUTBOUND" => Self::SidecarOutbound,
            "GATEWAY" => Self::Gateway,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "ANY",
            Self::SidecarInbound => "SIDECAR_INBOUND",
            Self::SidecarOutbound => "SIDECAR_OUTBOUND",
            Self::Gateway => "GATEWAY",
        }
    }
}

/// `patch.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Merge,
    Add,
    Remove,
    InsertBefore,
    InsertAfter,
    InsertFirst,
    Replace,
}

impl Operation {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "MERGE" => Self::Merge,
            "ADD" => Self::Add,
            "REMOVE" => Self::Remove,
            "INSERT_BEFORE" => Self::InsertBefore,
            "INSERT_AFTER" => Self::InsertAfter,
            "INSERT_FIRST" => Self::InsertFirst,
            "REPLACE" => Self::Replace,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merge => "MERGE",
            Self::Add => "ADD",
            Self::Remove => "REMOVE",
            Self::InsertBefore => "INSERT_BEFORE",
            Self::InsertAfter => "INSERT_AFTER",
            Self::InsertFirst => "INSERT_FIRST",
            Self::Replace => "REPLACE",
        }
    }

    /// Operations `istioctl analyze` calls relative (IST0151 when `priority` is 0).
    pub fn is_relative(self) -> bool {
        matches!(
            self,
            Self::InsertBefore | Self::InsertAfter | Self::Replace | Self::Remove
        )
    }
}

/// `match.listener.filterChain.filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterMatch {
    pub name: String,
    pub sub_filter: Option<String>,
}

/// `match.listener.filterChain`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterChainMatch {
    pub name: Option<String>,
    pub sni: Option<String>,
    pub transport_protocol: Option<String>,
    pub destination_port: Option<u32>,
    pub filter: Option<FilterMatch>,
}

/// `match.listener`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerMatch {
    pub name: Option<String>,
    pub port_number: Option<u32>,
    pub port_name: Option<String>,
    pub filter_chain: Option<FilterChainMatch>,
    pub listener_filter: Option<String>,
}

/// One `configPatches[i]`.
#[derive(Debug, Clone)]
pub struct ConfigPatch {
    pub index: usize,
    pub apply_to: ApplyTo,
    pub context: PatchContext,
    /// `match.proxy.proxyVersion` as written (empty when absent).
    pub proxy_version: String,
    pub version_matcher: VersionMatcher,
    /// `match.proxy.metadata`: node metadata that must be equal.
    pub proxy_metadata: BTreeMap<String, String>,
    pub listener: Option<ListenerMatch>,
    /// A `routeConfiguration` or `cluster` match (only meaningful for their applyTo kinds).
    pub has_non_listener_match: bool,
    /// pilot rewrites INSERT_* on kinds other than filters/routes to ADD; this is the effective op.
    pub operation: Operation,
    pub value: Option<Value>,
}

impl ConfigPatch {
    /// `hasNetworkFilterMatch` in listener_patch.go.
    pub fn filter_match(&self) -> Option<&FilterMatch> {
        self.listener
            .as_ref()?
            .filter_chain
            .as_ref()?
            .filter
            .as_ref()
    }

    /// `hasHTTPFilterMatch`: the subFilter name, if any.
    pub fn sub_filter(&self) -> Option<&str> {
        self.filter_match()?.sub_filter.as_deref()
    }

    /// The `name` of the patch value (the filter the patch adds), if any.
    pub fn value_name(&self) -> Option<&str> {
        self.value.as_ref()?.get("name")?.as_str()
    }
}

/// A parsed EnvoyFilter.
#[derive(Debug, Clone)]
pub struct EnvoyFilter {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    /// `metadata.creationTimestamp` when the YAML carries one (e.g. from `kubectl get -o yaml`).
    pub creation_timestamp: Option<String>,
    /// `workloadSelector.labels`; `None` = every workload in scope.
    pub workload_selector: Option<BTreeMap<String, String>>,
    pub patches: Vec<ConfigPatch>,
    /// Where it was read from (`file`, `file#doc`).
    pub source: String,
    /// Load order: stands in for creation order when no creationTimestamp is given.
    pub order: usize,
}

impl EnvoyFilter {
    /// `namespace/name`, the way errors name a resource.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A problem found while reading EnvoyFilters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// `namespace/name`, or the source when the resource has no name yet.
    pub resource: String,
    /// Field path inside the resource, e.g. `spec.configPatches[2].patch.value.typed_config`.
    pub path: String,
    pub message: String,
    /// File (and document) it came from.
    pub source: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {} ({})", self.resource, self.message, self.source)
        } else {
            write!(
                f,
                "{} {}: {} ({})",
                self.resource, self.path, self.message, self.source
            )
        }
    }
}

/// Output of parsing one EnvoyFilter document.
pub struct Parsed {
    pub filter: Option<EnvoyFilter>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

struct Ctx<'a> {
    resource: String,
    source: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            resource: self.resource.clone(),
            path: path.to_string(),
            message: message.into(),
            source: self.source.to_string(),
        });
    }
    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            resource: self.resource.clone(),
            path: path.to_string(),
            message: message.into(),
            source: self.source.to_string(),
        });
    }
}

/// Parses and validates one `kind: EnvoyFilter` object.
pub fn parse_envoy_filter(
    doc: &Value,
    source: &str,
    order: usize,
    default_namespace: &str,
) -> Parsed {
    let empty = Map::new();
    let meta = doc
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let namespace_given = meta.get("namespace").and_then(Value::as_str);
    let namespace = namespace_given.unwrap_or(default_namespace).to_string();
    let mut ctx = Ctx {
        resource: format!(
            "{namespace}/{}",
            if name.is_empty() { "<unnamed>" } else { &name }
        ),
        source,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    if name.is_empty() {
        ctx.error("metadata.name", "required");
    }
    if namespace_given.is_none() {
        ctx.warn(
            "metadata.namespace",
            format!("not set: assuming {default_namespace:?} (kubectl would use the current context's namespace)"),
        );
    }
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api != "networking.istio.io/v1alpha3" {
        ctx.error(
            "apiVersion",
            format!("{api:?}: EnvoyFilter exists only as networking.istio.io/v1alpha3"),
        );
    }
    let mut labels = BTreeMap::new();
    if let Some(l) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in l {
            labels.insert(k.clone(), scalar_string(v));
        }
    }
    let creation_timestamp = meta
        .get("creationTimestamp")
        .and_then(Value::as_str)
        .map(str::to_string);

    let spec = match doc.get("spec") {
        Some(Value::Object(s)) => s,
        _ => {
            ctx.error("spec", "required object");
            return finish(ctx, None);
        }
    };
    for k in spec.keys() {
        if !is_known_field(
            k,
            &[
                "workload_selector",
                "config_patches",
                "priority",
                "target_refs",
            ],
        ) {
            ctx.error(&join("spec", k), "unknown field (istiod rejects it)");
        }
    }
    let priority = match field(spec, "priority") {
        None | Some((Value::Null, _)) => 0,
        Some((Value::Number(n), name)) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(p) => p,
            None => {
                ctx.error(&join("spec", &name), "must be a 32-bit integer");
                0
            }
        },
        Some((_, name)) => {
            ctx.error(&join("spec", &name), "must be an integer");
            0
        }
    };
    let workload_selector = match field(spec, "workload_selector") {
        None | Some((Value::Null, _)) => None,
        Some((Value::Object(ws), name)) => {
            let path = join("spec", &name);
            let mut sel = BTreeMap::new();
            match ws.get("labels") {
                Some(Value::Object(l)) => {
                    for (k, v) in l {
                        match v {
                            Value::String(s) => {
                                sel.insert(k.clone(), s.clone());
                            }
                            _ => ctx.error(
                                &format!("{path}.labels.{k}"),
                                "label values must be strings",
                            ),
                        }
                    }
                }
                None | Some(Value::Null) => {}
                Some(_) => ctx.error(&join(&path, "labels"), "must be a map"),
            }
            if sel.is_empty() {
                // validateAlphaWorkloadSelector: a warning, and the filter applies to everything.
                ctx.warn(
                    &path,
                    "workloadSelector without labels: applied to all workloads in the namespace",
                );
                None
            } else {
                Some(sel)
            }
        }
        Some((_, name)) => {
            ctx.error(&join("spec", &name), "must be an object");
            None
        }
    };
    let mut patches = Vec::new();
    match field(spec, "config_patches") {
        None | Some((Value::Null, _)) => ctx.warn(
            "spec.configPatches",
            "no configPatches: the filter does nothing",
        ),
        Some((Value::Array(items), name)) => {
            for (i, cp) in items.iter().enumerate() {
                let path = format!("{name}[{i}]");
                if let Some(p) = parse_patch(&mut ctx, cp, i, &path, priority) {
                    patches.push(p);
                }
            }
        }
        Some((_, name)) => ctx.error(&join("spec", &name), "must be a list"),
    }
    let filter = EnvoyFilter {
        namespace,
        name,
        labels,
        priority,
        creation_timestamp,
        workload_selector,
        patches,
        source: source.to_string(),
        order,
    };
    finish(ctx, Some(filter))
}

fn finish(ctx: Ctx<'_>, filter: Option<EnvoyFilter>) -> Parsed {
    let ok = ctx.errors.is_empty();
    Parsed {
        filter: if ok { filter } else { None },
        errors: ctx.errors,
        warnings: ctx.warnings,
    }
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn enum_str<'a>(ctx: &mut Ctx<'_>, v: &'a Value, path: &str) -> Option<&'a str> {
    match v {
        Value::String(s) => Some(s.as_str()),
        _ => {
            ctx.error(path, "must be an enum name string");
            None
        }
    }
}

fn parse_patch(
    ctx: &mut Ctx<'_>,
    cp: &Value,
    index: usize,
    path: &str,
    priority: i32,
) -> Option<ConfigPatch> {
    let obj = match cp.as_object() {
        Some(o) => o,
        None => {
            ctx.error(path, "Envoy filter: null config patch");
            return None;
        }
    };
    for k in obj.keys() {
        if !is_known_field(k, &["apply_to", "match", "patch"]) {
            ctx.error(&join(path, k), "unknown field");
        }
    }
    let apply_to = match field(obj, "apply_to") {
        Some((v, name)) => {
            let p = join(path, &name);
            let s = enum_str(ctx, v, &p)?;
            match ApplyTo::parse(s) {
                Some(a) => a,
                None if s == "INVALID" => {
                    ctx.error(&p, "Envoy filter: missing applyTo");
                    return None;
                }
                None => {
                    ctx.error(&p, format!("unknown applyTo {s:?}"));
                    return None;
                }
            }
        }
        None => {
            ctx.error(path, "Envoy filter: missing applyTo");
            return None;
        }
    };
    let (patch, patch_name) = match field(obj, "patch") {
        Some((Value::Object(p), name)) => (p, name),
        _ => {
            ctx.error(path, "Envoy filter: missing patch");
            return None;
        }
    };
    let ppath = join(path, &patch_name);
    for k in patch.keys() {
        if !is_known_field(k, &["operation", "value", "filter_class"]) {
            ctx.error(&join(&ppath, k), "unknown field");
        }
    }
    if let Some((v, name)) = field(patch, "filter_class") {
        if v.as_str().is_some_and(|s| s != "UNSPECIFIED") {
            ctx.error(
                &join(&ppath, &name),
                "filterClass is not modelled (it only orders ADDed HTTP filters); use INSERT_BEFORE/INSERT_AFTER",
            );
        }
    }
    let mut operation = match field(patch, "operation") {
        Some((v, name)) => {
            let p = join(&ppath, &name);
            let s = enum_str(ctx, v, &p)?;
            match Operation::parse(s) {
                Some(o) => o,
                None => {
                    ctx.error(
                        &p,
                        format!("Envoy filter: missing or unknown patch operation {s:?}"),
                    );
                    return None;
                }
            }
        }
        None => {
            ctx.error(&ppath, "Envoy filter: missing patch operation");
            return None;
        }
    };
    let value = match patch.get("value") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => {
            ctx.error(&join(&ppath, "value"), "must be an object");
            return None;
        }
    };
    if operation != Operation::Remove && value.is_none() {
        ctx.error(
            &ppath,
            "Envoy filter: missing patch value for non-remove operation",
        );
        return None;
    }

    // match
    let mut context = PatchContext::Any;
    let mut proxy_version = String::new();
    let mut proxy_metadata = BTreeMap::new();
    let mut listener = None;
    let mut has_non_listener_match = false;
    if let Some((m, mname)) = field(obj, "match") {
        let mpath = join(path, &mname);
        match m {
            Value::Null => {}
            Value::Object(m) => {
                for k in m.keys() {
                    if !is_known_field(
                        k,
                        &[
                            "context",
                            "proxy",
                            "listener",
                            "route_configuration",
                            "cluster",
                        ],
                    ) {
                        ctx.error(&join(&mpath, k), "unknown field");
                    }
                }
                if let Some((v, name)) = field(m, "context") {
                    let p = join(&mpath, &name);
                    if let Some(s) = enum_str(ctx, v, &p) {
                        match PatchContext::parse(s) {
                            Some(c) => context = c,
                            None => ctx.error(&p, format!("unknown context {s:?} (ANY, SIDECAR_INBOUND, SIDECAR_OUTBOUND, GATEWAY)")),
                        }
                    }
                }
                if let Some((v, name)) = field(m, "proxy") {
                    let p = join(&mpath, &name);
                    match v {
                        Value::Object(px) => {
                            for k in px.keys() {
                                if !is_known_field(k, &["proxy_version", "metadata"]) {
                                    ctx.error(&join(&p, k), "unknown field");
                                }
                            }
                            if let Some((pv, pvname)) = field(px, "proxy_version") {
                                match pv {
                                    Value::String(s) => proxy_version = s.clone(),
                                    _ => ctx.error(&join(&p, &pvname), "must be a string"),
                                }
                            }
                            if let Some(Value::Object(md)) = px.get("metadata") {
                                for (k, v) in md {
                                    proxy_metadata.insert(k.clone(), scalar_string(v));
                                }
                            }
                        }
                        Value::Null => {}
                        _ => ctx.error(&p, "must be an object"),
                    }
                }
                for other in ["route_configuration", "cluster"] {
                    if field(m, other).is_some_and(|(v, _)| !v.is_null()) {
                        has_non_listener_match = true;
                    }
                }
                if let Some((v, name)) = field(m, "listener") {
                    let lpath = join(&mpath, &name);
                    listener = parse_listener_match(ctx, v, &lpath, apply_to);
                    if has_non_listener_match {
                        ctx.error(
                            &mpath,
                            "set only one of listener, routeConfiguration, cluster",
                        );
                    }
                }
                if has_non_listener_match
                    && matches!(
                        apply_to,
                        ApplyTo::Listener
                            | ApplyTo::FilterChain
                            | ApplyTo::NetworkFilter
                            | ApplyTo::HttpFilter
                    )
                {
                    ctx.error(
                        &mpath,
                        "Envoy filter: applyTo for listener class objects cannot have non listener match",
                    );
                }
            }
            _ => ctx.error(&mpath, "must be an object"),
        }
    }
    let version_matcher = match VersionMatcher::compile(&proxy_version) {
        Ok(m) => m,
        Err(e) => {
            ctx.error(
                &format!("{path}.match.proxy.proxyVersion"),
                format!("Envoy filter: invalid regex for proxy version, [{e}]"),
            );
            return None;
        }
    };
    if !proxy_version.is_empty() && !version_matcher.is_fast_path() {
        let hits: Vec<String> = (13..=19)
            .map(|m| format!("1.{m}.0"))
            .filter(|v| version_matcher.matches(v))
            .collect();
        if hits.len() > 1 {
            ctx.warn(
                &format!("{path}.match.proxy.proxyVersion"),
                format!(
                    "{proxy_version:?} matches several minors ({}); one file per minor should use ^1\\.N.* (istio/istio#43602)",
                    hits.join(", ")
                ),
            );
        }
    }

    // pilot: INSERT_* on anything but filters and routes becomes ADD (convertToEnvoyFilterWrapper).
    if matches!(
        operation,
        Operation::InsertBefore | Operation::InsertAfter | Operation::InsertFirst
    ) && !matches!(
        apply_to,
        ApplyTo::HttpFilter | ApplyTo::NetworkFilter | ApplyTo::HttpRoute | ApplyTo::ListenerFilter
    ) {
        ctx.warn(
            &format!("{ppath}.operation"),
            format!(
                "{} on {} is treated as ADD by istiod",
                operation.as_str(),
                apply_to.as_str()
            ),
        );
        operation = Operation::Add;
    }
    if operation == Operation::Replace
        && !matches!(apply_to, ApplyTo::HttpFilter | ApplyTo::NetworkFilter)
    {
        ctx.warn(
            &format!("{ppath}.operation"),
            format!("REPLACE is only valid for HTTP_FILTER and NETWORK_FILTER (istioctl analyze), not {}", apply_to.as_str()),
        );
    }
    if operation.is_relative() && priority == 0 {
        ctx.warn(
            &ppath,
            format!(
                "IST0151: relative operation {} with priority 0: the result depends on creation order; set spec.priority (e.g. 10, after Istio's -1)",
                operation.as_str()
            ),
        );
    }

    // the value
    if let Some(v) = &value {
        validate_value(ctx, apply_to, operation, v, &format!("{ppath}.value"));
    }
    if !apply_to.is_modelled() {
        ctx.warn(
            path,
            format!("applyTo {} is recognised but not modelled by the chain builder; it is reported, not applied", apply_to.as_str()),
        );
    }
    Some(ConfigPatch {
        index,
        apply_to,
        context,
        proxy_version,
        version_matcher,
        proxy_metadata,
        listener,
        has_non_listener_match,
        operation,
        value,
    })
}

fn opt_str(ctx: &mut Ctx<'_>, obj: &Map<String, Value>, snake: &str, path: &str) -> Option<String> {
    match field(obj, snake) {
        None | Some((Value::Null, _)) => None,
        Some((Value::String(s), _)) => Some(s.clone()),
        Some((_, name)) => {
            ctx.error(&join(path, &name), "must be a string");
            None
        }
    }
}

fn opt_u32(ctx: &mut Ctx<'_>, obj: &Map<String, Value>, snake: &str, path: &str) -> Option<u32> {
    match field(obj, snake) {
        None | Some((Value::Null, _)) => None,
        Some((Value::Number(n), name)) => match n.as_u64().and_then(|u| u32::try_from(u).ok()) {
            Some(0) | None => {
                if n.as_u64() != Some(0) {
                    ctx.error(&join(path, &name), "must be a port number");
                }
                None
            }
            Some(p) => Some(p),
        },
        Some((_, name)) => {
            ctx.error(&join(path, &name), "must be a number");
            None
        }
    }
}

fn parse_listener_match(
    ctx: &mut Ctx<'_>,
    v: &Value,
    path: &str,
    apply_to: ApplyTo,
) -> Option<ListenerMatch> {
    let obj = match v {
        Value::Null => return None,
        Value::Object(o) => o,
        _ => {
            ctx.error(path, "must be an object");
            return None;
        }
    };
    for k in obj.keys() {
        if !is_known_field(
            k,
            &[
                "port_number",
                "port_name",
                "filter_chain",
                "listener_filter",
                "name",
            ],
        ) {
            ctx.error(&join(path, k), "unknown field");
        }
    }
    let mut lm = ListenerMatch {
        name: opt_str(ctx, obj, "name", path),
        port_number: opt_u32(ctx, obj, "port_number", path),
        port_name: opt_str(ctx, obj, "port_name", path),
        listener_filter: opt_str(ctx, obj, "listener_filter", path),
        filter_chain: None,
    };
    if let Some((fcv, fcname)) = field(obj, "filter_chain") {
        let fcpath = join(path, &fcname);
        match fcv {
            Value::Null => {}
            Value::Object(fc) => {
                for k in fc.keys() {
                    if !is_known_field(
                        k,
                        &[
                            "name",
                            "sni",
                            "transport_protocol",
                            "application_protocols",
                            "filter",
                            "destination_port",
                        ],
                    ) {
                        ctx.error(&join(&fcpath, k), "unknown field");
                    }
                }
                let mut fcm = FilterChainMatch {
                    name: opt_str(ctx, fc, "name", &fcpath),
                    sni: opt_str(ctx, fc, "sni", &fcpath),
                    transport_protocol: opt_str(ctx, fc, "transport_protocol", &fcpath),
                    destination_port: opt_u32(ctx, fc, "destination_port", &fcpath),
                    filter: None,
                };
                if let Some((fv, fname)) = field(fc, "filter") {
                    let fpath = join(&fcpath, &fname);
                    fcm.filter = parse_filter_match(ctx, fv, &fpath, apply_to);
                }
                lm.filter_chain = Some(fcm);
            }
            _ => ctx.error(&fcpath, "must be an object"),
        }
    }
    Some(lm)
}

fn parse_filter_match(
    ctx: &mut Ctx<'_>,
    v: &Value,
    path: &str,
    apply_to: ApplyTo,
) -> Option<FilterMatch> {
    let obj = match v {
        Value::Null => return None,
        Value::Object(o) => o,
        _ => {
            ctx.error(path, "must be an object");
            return None;
        }
    };
    for k in obj.keys() {
        if !is_known_field(k, &["name", "sub_filter"]) {
            ctx.error(&join(path, k), "unknown field");
        }
    }
    if matches!(apply_to, ApplyTo::Listener | ApplyTo::FilterChain) {
        ctx.warn(
            path,
            format!(
                "Envoy filter: filter match has no effect when used with {}",
                apply_to.as_str()
            ),
        );
    }
    let name = opt_str(ctx, obj, "name", path).unwrap_or_default();
    if name.is_empty() {
        ctx.error(
            &join(path, "name"),
            "Envoy filter: filter match has no name to match on",
        );
        return None;
    }
    if let Some(new) = names::deprecated_replacement(&name) {
        ctx.warn(
            &join(path, "name"),
            format!("using deprecated filter name {name:?}; use {new:?} instead"),
        );
    }
    let mut sub_filter = None;
    if let Some((sv, sname)) = field(obj, "sub_filter") {
        let spath = join(path, &sname);
        if let Value::Object(sf) = sv {
            if apply_to != ApplyTo::HttpFilter {
                ctx.error(
                    &spath,
                    "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
                );
            } else if names::canonical(&name) != names::HCM {
                ctx.error(
                    &spath,
                    format!(
                        "Envoy filter: subfilter match requires filter match with {}",
                        names::HCM
                    ),
                );
            }
            let sub = opt_str(ctx, sf, "name", &spath).unwrap_or_default();
            if sub.is_empty() {
                ctx.error(
                    &join(&spath, "name"),
                    "Envoy filter: subfilter match has no name to match on",
                );
            } else {
                if let Some(new) = names::deprecated_replacement(&sub) {
                    ctx.warn(
                        &join(&spath, "name"),
                        format!("using deprecated filter name {sub:?}; use {new:?} instead"),
                    );
                }
                sub_filter = Some(sub);
            }
        } else if !sv.is_null() {
            ctx.error(&spath, "must be an object");
        }
    }
    Some(FilterMatch { name, sub_filter })
}

/// Shape of an HTTP_FILTER / NETWORK_FILTER / EXTENSION_CONFIG value; typed configs decoded so
/// that a broken Wasm config fails at load time with its field path.
fn validate_value(ctx: &mut Ctx<'_>, apply_to: ApplyTo, op: Operation, v: &Value, path: &str) {
    let chain = match apply_to {
        ApplyTo::HttpFilter | ApplyTo::ExtensionConfig => ChainKind::Http,
        ApplyTo::NetworkFilter => ChainKind::Network,
        _ => return,
    };
    let obj = match v.as_object() {
        Some(o) => o,
        None => return,
    };
    let known: &[&str] = match apply_to {
        ApplyTo::ExtensionConfig => &["name", "typed_config"],
        ApplyTo::HttpFilter => &[
            "name",
            "typed_config",
            "config_discovery",
            "is_optional",
            "disabled",
        ],
        _ => &["name", "typed_config", "config_discovery"],
    };
    for k in obj.keys() {
        if !is_known_field(k, known) {
            ctx.warn(
                &join(path, k),
                "unknown field, dropped by istiod's non-strict conversion",
            );
        }
    }
    if op == Operation::Merge {
        // A MERGE value is partial by design; it is merged into the matched filter later.
        return;
    }
    let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        ctx.error(
            &join(path, "name"),
            "a filter needs a non-empty name (Envoy: name min_len 1)",
        );
    }
    let tc = field(obj, "typed_config");
    let cd = field(obj, "config_discovery");
    match (tc, cd) {
        (Some((t, tname)), None) => match typed_config::decode(t, &join(path, &tname), chain) {
            Ok(d) => {
                for w in d.warnings {
                    ctx.warn("", w);
                }
            }
            Err(e) => ctx.error(&e.path, e.message),
        },
        (None, Some(_)) if apply_to == ApplyTo::HttpFilter => {}
        (None, Some((_, cname))) => ctx.error(&join(path, &cname), "config_discovery is only modelled for HTTP filters"),
        (Some(_), Some(_)) => ctx.error(path, "set typed_config or config_discovery, not both"),
        (None, None) => ctx.error(
            path,
            "missing typed_config: Envoy 1.21+ has no name-only filter factories (istioctl: \"using deprecated types by name without typed_config\")",
        ),
    }
}
