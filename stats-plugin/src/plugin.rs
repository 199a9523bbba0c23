//! The plugin logic of one root context (`PluginRootContext` + `PluginContext`,
//! `extensions/stats/plugin.{h,cc}`), free of any ABI call: reads go through [`Host`], metric
//! calls through [`Metrics`]. The wasm glue owns the contexts and forwards callbacks here.

use crate::attributes::node::{read_local_node, service_name_fallback, NodeDims};
use crate::attributes::peer::{self, Peer, PeerCache};
use crate::attributes::response_flags;
use crate::attributes::workload_metadata;
use crate::attributes::{self, Compat, Direction, Env, FlagTable, Protocol, RequestInfo};
use crate::config::{self, MetadataMode};
use crate::expressions::Scope;
use crate::schema::standard::{
    ValueSource, COUNT_STANDARD_LABELS, DESTINATION_NODE_MASK, OUTCOME_MASK, SOURCE_NODE_MASK,
};
use crate::schema::{self, Schema, StatGen};
use crate::series::cache::{Labels, MetricCache, ResolvedStat};
use crate::series::naming::{self, CACHE_HIT_NAME, CACHE_MISS_NAME};
use crate::series::{MetricKind, Metrics};
use proxy_attributes::host::Host;

/// Per-stream state (`RequestInfo` plus the peer, decoded at most once once found).
#[derive(Debug, Default)]
pub struct Stream {
    pub info: RequestInfo,
    peer: Option<Peer>,
}

impl Stream {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Everything a successful configure produces.
struct Configured {
    schema: Schema,
    local: NodeDims,
    /// The effective 1.16 `metadata_mode` (`LocalNode` where the release ignores the field).
    metadata_mode: MetadataMode,
    service_name_fallback: String,
    use_host_header_fallback: bool,
    cache: MetricCache,
    peers: PeerCache,
    /// Per dimension expression: `Some(value)` when it is node-only (evaluated at configure;
    /// `None` inside = evaluation failed → `unknown`).
    fixed_labels: Vec<Option<Option<String>>>,
    /// Per value expression: `Some(value)` when node-only.
    fixed_values: Vec<Option<u64>>,
}

/// One root context's plugin state.
pub struct StatsPlugin {
    direction: Direction,
    compat: Compat,
    /// Set by [`StatsPlugin::with_compat`]; otherwise `compat` follows the local ISTIO_VERSION.
    compat_pinned: bool,
    /// `None` = not initialized (bad JSON): every report is a no-op (Istio 1.14+).
    state: Option<Configured>,
    cache_hit_id: Option<u32>,
    cache_miss_id: Option<u32>,
    cache_hits_accumulator: i64,
}

/// Istio flushes cache hits every 100 (`plugin.cc:647-651`).
const CACHE_HIT_FLUSH: i64 = 100;

impl StatsPlugin {
    pub fn new(direction: Direction) -> Self {
        StatsPlugin {
            direction,
            compat: Compat::default(),
            compat_pinned: false,
            state: None,
            cache_hit_id: None,
            cache_miss_id: None,
            cache_hits_accumulator: 0,
        }
    }

    /// Pins the version-dependent behaviour instead of deriving it from the local node's
    /// `ISTIO_VERSION` at configure time.
    pub fn with_compat(mut self, compat: Compat) -> Self {
        self.compat = compat;
        self.compat_pinned = true;
        self
    }

    /// Sets the direction (the glue learns it from `plugin_root_id` at configure time).
    pub fn set_direction(&mut self, direction: Direction) {
        self.direction = direction;
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn is_initialized(&self) -> bool {
        self.state.is_some()
    }

    /// Number of cached dimension vectors (for tests and diagnostics).
    pub fn cache_len(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.cache.len())
    }

    /// `onConfigure`: parses and compiles the configuration, defines and records `istio_build`.
    /// Returns the tick period to set, or `None` when the configuration was refused (then the
    /// plugin reports nothing, like Istio 1.14+; `on_configure` must still return true).
    pub fn configure(
        &mut self,
        host: &dyn Host,
        metrics: &mut dyn Metrics,
        configuration: &[u8],
    ) -> Option<u32> {
        // Istio defines these in the root constructor, so they exist even with a bad config.
        if self.cache_hit_id.is_none() {
            self.cache_hit_id = metrics.define(MetricKind::Counter, CACHE_HIT_NAME);
        }
        if self.cache_miss_id.is_none() {
            self.cache_miss_id = metrics.define(MetricKind::Counter, CACHE_MISS_NAME);
        }
        self.state = None;
        let local_node = read_local_node(host);
        if !self.compat_pinned {
            self.compat = Compat::for_istio_version(&local_node.istio_version);
        }
        let parsed = match config::parse(configuration) {
            Ok(p) => p,
            Err(e) => {
                log::warn!(
                    "istio.stats: {e}; the plugin will not report any istio metric (configuration was {:?})",
                    String::from_utf8_lossy(configuration)
                );
                return None;
            }
        };
        for w in &parsed.warnings {
            log::warn!("istio.stats: {w}");
        }
        let (schema, warnings) = schema::build(&parsed.config);
        for w in &warnings {
            log::warn!("istio.stats: {w}");
        }
        if let Some(id) = metrics.define(
            MetricKind::Gauge,
            &naming::istio_build_name(&local_node.istio_version),
        ) {
            metrics.record(id, 1);
        }
        let scope = Scope::new(host);
        let fixed_labels = schema
            .dimension_exprs
            .iter()
            .map(|e| e.node_only.then(|| scope.label(&e.program)))
            .collect();
        let fixed_values = schema
            .value_exprs
            .iter()
            .map(|e| {
                e.node_only
                    .then(|| scope.int(&e.program).unwrap_or(0) as u64)
            })
            .collect();
        drop(scope);
        let metadata_mode = self.effective_metadata_mode(parsed.config.metadata_mode);
        self.state = Some(Configured {
            fixed_labels,
            fixed_values,
            schema,
            local: NodeDims::from_node(&local_node),
            metadata_mode,
            service_name_fallback: service_name_fallback(&local_node),
            use_host_header_fallback: !parsed.config.disable_host_header_fallback,
            cache: MetricCache::new(),
            peers: PeerCache::default(),
        });
        Some(parsed.config.tcp_reporting_duration_ms)
    }

    /// The configured `metadata_mode`, or `LocalNode` where Istio would not act on it: releases
    /// other than 1.16 do not know the field, and 1.16 applies it to inbound plugins only
    /// (`plugin.cc:637`, `!outbound_`).
    fn effective_metadata_mode(&self, configured: MetadataMode) -> MetadataMode {
        if configured == MetadataMode::LocalNode {
            return configured;
        }
        if !self.compat.metadata_mode {
            log::info!(
                "istio.stats: metadata_mode {} ignored: only Istio 1.16's stats plugin has the field",
                configured.name()
            );
            return MetadataMode::LocalNode;
        }
        if self.direction.is_outbound() {
            log::info!(
                "istio.stats: metadata_mode {} ignored: it only remaps the destination of inbound (stats_inbound) reports",
                configured.name()
            );
            return MetadataMode::LocalNode;
        }
        configured
    }

    fn env<'a>(&self, state: &'a Configured) -> Env<'a> {
        Env {
            direction: self.direction,
            use_host_header_fallback: state.use_host_header_fallback,
            service_name_fallback: &state.service_name_fallback,
            compat: self.compat,
        }
    }

    /// HTTP `onRequestHeaders`.
    pub fn on_request_headers<H: Host + ?Sized>(&self, host: &H, stream: &mut Stream) {
        match &self.state {
            Some(state) => attributes::on_request_headers(host, &self.env(state), &mut stream.info),
            None => stream.info.protocol = Some(attributes::request_protocol(host)),
        }
    }

    /// TCP `onNewConnection`.
    pub fn on_new_connection(&self, stream: &mut Stream) {
        stream.info.protocol = Some(Protocol::Tcp);
        stream.info.tcp_opened = 1;
    }

    /// TCP `onDownstreamData`.
    pub fn on_downstream_data(&self, stream: &mut Stream, size: usize) {
        stream.info.tcp_received_bytes = stream.info.tcp_received_bytes.wrapping_add(size as u64);
    }

    /// TCP `onUpstreamData`.
    pub fn on_upstream_data(&self, stream: &mut Stream, size: usize) {
        stream.info.tcp_sent_bytes = stream.info.tcp_sent_bytes.wrapping_add(size as u64);
    }

    /// `onLog`: the final report (TCP counts the close first).
    pub fn on_log<H: Host, M: Metrics + ?Sized>(
        &mut self,
        host: &H,
        metrics: &mut M,
        stream: &mut Stream,
    ) {
        if stream.info.protocol == Some(Protocol::Tcp) {
            stream.info.tcp_closed = stream.info.tcp_closed.saturating_add(1);
        }
        self.report(host, metrics, stream, true);
    }

    /// `report(request_info, end_stream)` (`plugin.cc:591-673`).
    pub fn report<H: Host, M: Metrics + ?Sized>(
        &mut self,
        host: &H,
        metrics: &mut M,
        stream: &mut Stream,
        end_stream: bool,
    ) {
        let direction = self.direction;
        let compat = self.compat;
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let env = Env {
            direction,
            use_host_header_fallback: state.use_host_header_fallback,
            service_name_fallback: &state.service_name_fallback,
            compat,
        };
        let is_tcp = stream.info.protocol == Some(Protocol::Tcp);

        if !stream.peer.as_ref().is_some_and(|p| p.found) {
            let headers_readable = !is_tcp && end_stream;
            stream.peer = Some(peer::resolve(
                host,
                direction,
                compat,
                headers_readable,
                &mut state.peers,
            ));
        }
        let (peer_dims, peer_node) = match &stream.peer {
            Some(p) => {
                if is_tcp && p.maybe_waiting && !end_stream {
                    return;
                }
                (&p.dims, &p.filter_state_node)
            }
            None => return,
        };

        let info = &mut stream.info;
        if is_tcp {
            attributes::populate_tcp(host, &env, info);
        } else if end_stream {
            attributes::populate_http(host, &env, info);
        } else {
            attributes::populate_common(host, &env, env.use_host_header_fallback, info);
            if info.protocol == Some(Protocol::Grpc) {
                attributes::populate_grpc(host, info);
            }
        }

        // Istio 1.16 waypoint (`plugin.cc:636-657`): in a host/cluster metadata mode an inbound
        // report takes its destination from the upstream workload metadata, not the local node.
        // Nothing is read in the default mode or by an outbound root (`!outbound_`; checked here
        // too in case the direction changed after configure).
        let remapped = if direction.is_outbound() {
            None
        } else {
            workload_metadata::destination_dims(
                host,
                state.metadata_mode,
                compat.endpoint_min_parts,
            )
        };
        let local = remapped.as_ref().unwrap_or(&state.local);

        // Standard dimensions in slot order (`map`, plugin.cc:138-180).
        let (src, dst): (&NodeDims, &NodeDims) = if direction.is_outbound() {
            (local, peer_dims)
        } else {
            (peer_dims, local)
        };
        let mut code_buf = [0u8; 10];
        let code = decimal(info.response_code, &mut code_buf);
        let standard: [&[u8]; COUNT_STANDARD_LABELS] = [
            if direction.is_outbound() {
                b"source"
            } else {
                b"destination"
            },
            src.workload.as_bytes(),
            src.namespace.as_bytes(),
            &info.source_principal,
            src.app.as_bytes(),
            src.version.as_bytes(),
            src.canonical_service.as_bytes(),
            src.canonical_revision.as_bytes(),
            src.cluster.as_bytes(),
            dst.workload.as_bytes(),
            dst.namespace.as_bytes(),
            &info.destination_principal,
            dst.app.as_bytes(),
            dst.version.as_bytes(),
            &info.destination_service_host,
            &info.destination_service_name,
            dst.namespace.as_bytes(),
            dst.canonical_service.as_bytes(),
            dst.canonical_revision.as_bytes(),
            dst.cluster.as_bytes(),
            info.protocol.map_or("", Protocol::label).as_bytes(),
            // Response flags and gRPC status: rendered by `series_names` (the key holds their
            // inputs), so a request formats neither.
            b"",
            info.security_policy.label().as_bytes(),
            code.as_bytes(),
            b"",
        ];
        // The unknown rule (grpc_response_status exempt; see `series_names`).
        let value_of = |i: usize| -> &[u8] {
            match standard.get(i) {
                Some(v) if !v.is_empty() => v,
                _ => b"unknown",
            }
        };
        // The cache key. Header: direction and how the two node sides are keyed. The local side
        // (and the reporter) is constant for this configuration unless metadata_mode remapped
        // it, so it is left out; a peer from the peer cache stands in as its dims id (same dims,
        // same id); the outcome labels stand in as their inputs. Whatever is left out is
        // determined by the header, so the key still determines every label value; the values
        // themselves are taken from `standard` when naming a new series.
        let peer_id = stream.peer.as_ref().and_then(|p| p.dims_id);
        let cache = &mut state.cache;
        cache.begin();
        cache.push_raw(&[
            direction.is_outbound() as u8,
            remapped.is_some() as u8,
            peer_id.is_some() as u8,
        ]);
        if let Some(id) = peer_id {
            cache.push_raw(&id.to_le_bytes());
        }
        // The request-outcome labels (protocol, response flags, security policy, response code,
        // gRPC status) keyed by what they are formatted from, fixed-width: a few bytes in the
        // prefix hash and compare at a fraction of the cost of five strings walked as labels.
        cache.push_raw(&[
            info.protocol.map_or(0, Protocol::bit),
            info.security_policy as u8,
            info.response_flag_bits.is_some() as u8,
            compat.flag_table as u8,
        ]);
        cache.push_raw(&info.response_code.to_le_bytes());
        cache.push_raw(&info.response_flag_bits.unwrap_or(0).to_le_bytes());
        if info.protocol == Some(Protocol::Grpc) {
            cache.push_raw(&info.grpc_status.to_le_bytes());
        }
        let (local_mask, peer_mask) = if direction.is_outbound() {
            (SOURCE_NODE_MASK, DESTINATION_NODE_MASK)
        } else {
            (DESTINATION_NODE_MASK, SOURCE_NODE_MASK)
        };
        let mut left_out = (1 << schema::standard::slot::REPORTER) | OUTCOME_MASK;
        if remapped.is_none() {
            left_out |= local_mask;
        }
        if peer_id.is_some() {
            left_out |= peer_mask;
        }
        // The slots kept, hashed and compared in place (lowest first).
        let labels = Labels {
            mask: !left_out & ((1 << COUNT_STANDARD_LABELS) - 1),
            value: value_of,
        };
        let schema = &state.schema;
        let mut scope = Scope::new(host);
        // Only CEL reads the scope: without expressions the peer's refcount is left alone.
        let uses_cel = !schema.dimension_exprs.is_empty() || !schema.value_exprs.is_empty();
        if let (true, Some(node)) = (uses_cel, peer_node) {
            scope.set_peer(direction.is_outbound(), node.clone());
        }
        for (i, e) in schema.dimension_exprs.iter().enumerate() {
            match state.fixed_labels.get(i) {
                Some(Some(Some(v))) => cache.push(v),
                Some(Some(None)) => cache.push("unknown"),
                _ => match scope.label(&e.program) {
                    Some(v) => cache.push(&v),
                    None => cache.push("unknown"),
                },
            }
        }
        let fixed_values = &state.fixed_values;

        let protocol_bit = info.protocol.map_or(0, Protocol::bit);
        if let Some(stats) = cache.lookup(&labels) {
            for s in stats {
                if let Some(gen) = schema.stat_gens.get(s.gen) {
                    if end_stream || gen.recurrent {
                        record(metrics, s.id, gen, info, schema, fixed_values, &scope);
                    }
                }
            }
            self.cache_hits_accumulator += 1;
            if self.cache_hits_accumulator == CACHE_HIT_FLUSH {
                if let Some(id) = self.cache_hit_id {
                    metrics.increment(id, CACHE_HIT_FLUSH);
                }
                self.cache_hits_accumulator = 0;
            }
            return;
        }

        // A new label set: name its series (from the values, before `record` may update the
        // per-stream counters they borrow from), then define and record them in order. Out of
        // line: the hit path above is the one every request takes.
        let key = cache.pending(&labels);
        let names = series_names(
            schema,
            protocol_bit,
            &value_of,
            Outcome {
                flag_bits: info.response_flag_bits,
                flag_table: compat.flag_table,
                grpc_status: (info.protocol == Some(Protocol::Grpc)).then_some(info.grpc_status),
            },
            cache,
        );
        let resolved = define_series(
            metrics,
            schema,
            names,
            info,
            fixed_values,
            &scope,
            end_stream,
        );
        if let Some(id) = self.cache_miss_id {
            metrics.increment(id, 1);
        }
        cache.insert(key, resolved);
    }
}

/// The inputs of the two outcome labels that are formatted only when a series is named.
struct Outcome {
    /// `response.flags`, when read (else `unknown`).
    flag_bits: Option<u64>,
    flag_table: FlagTable,
    /// The gRPC status of a gRPC request; `None` gives `""` (HTTP and TCP are exempt from the
    /// unknown rule for this label).
    grpc_status: Option<i64>,
}

/// The names of a new label set's series: each stat generator of the request's protocol, with
/// standard values from `value_of` (as text here, invalid UTF-8 replaced) or `outcome`, and
/// custom ones from the cache key.
#[cold]
#[inline(never)]
fn series_names<'v>(
    schema: &Schema,
    protocol_bit: u8,
    value_of: &dyn Fn(usize) -> &'v [u8],
    outcome: Outcome,
    cache: &MetricCache,
) -> Vec<(usize, String)> {
    use schema::standard::slot::{GRPC_RESPONSE_STATUS, RESPONSE_FLAGS};
    let standard: Vec<std::borrow::Cow<'v, str>> = (0..COUNT_STANDARD_LABELS)
        .map(|slot| match slot {
            RESPONSE_FLAGS => match outcome.flag_bits {
                Some(bits) => response_flags::format(bits, outcome.flag_table),
                None => "unknown".into(),
            },
            GRPC_RESPONSE_STATUS => outcome
                .grpc_status
                .map_or("".into(), |s| s.to_string().into()),
            _ => String::from_utf8_lossy(value_of(slot)),
        })
        .collect();
    schema
        .stat_gens
        .iter()
        .enumerate()
        .filter(|(_, gen)| gen.protocols & protocol_bit != 0)
        .map(|(g, gen)| {
            let name = naming::stat_name(
                &gen.metric,
                &gen.tags,
                &schema.field_separator,
                &schema.value_separator,
                |slot| match slot.checked_sub(COUNT_STANDARD_LABELS) {
                    None => standard.get(slot).map_or("", |v| v),
                    Some(d) => cache.value(d),
                },
            );
            (g, name)
        })
        .collect()
}

/// Defines the named series in order and records this request into each.
#[cold]
#[inline(never)]
fn define_series<M: Metrics + ?Sized>(
    metrics: &mut M,
    schema: &Schema,
    names: Vec<(usize, String)>,
    info: &mut RequestInfo,
    fixed_values: &[Option<u64>],
    scope: &Scope<'_>,
    end_stream: bool,
) -> Vec<ResolvedStat> {
    let mut resolved = Vec::new();
    for (g, name) in names {
        let Some(gen) = schema.stat_gens.get(g) else {
            continue;
        };
        let Some(id) = metrics.define(gen.kind, &name) else {
            log::warn!("istio.stats: the host refused to define {name}");
            continue;
        };
        if end_stream || gen.recurrent {
            record(metrics, id, gen, info, schema, fixed_values, scope);
        }
        resolved.push(ResolvedStat { id, gen: g });
    }
    resolved
}

/// `n` in decimal, written into `buf` (no allocation on the report path).
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &str {
    // u32::MAX has 10 digits: the buffer always suffices.
    let mut at = buf.len();
    while let Some(slot) = at.checked_sub(1).and_then(|i| buf.get_mut(i)) {
        *slot = b'0' + (n % 10) as u8;
        at -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Digits are ASCII: the word-wise check, not `from_utf8` (~130 wasm instructions).
    buf.get(at..)
        .and_then(|b| proxy_attributes::bytes::as_str(b).ok())
        .unwrap_or("0")
}

/// `SimpleStat::record`: extract the value (mutating the per-stream accumulators), skip counter
/// zeros, record.
#[inline(always)]
fn record<M: Metrics + ?Sized>(
    metrics: &mut M,
    id: u32,
    gen: &StatGen,
    info: &mut RequestInfo,
    schema: &Schema,
    fixed_values: &[Option<u64>],
    scope: &Scope<'_>,
) {
    let kind = gen.kind;
    let source = gen.value;
    let value: u64 = match source {
        ValueSource::One => 1,
        ValueSource::DurationMs => (info.duration_ns / 1_000_000) as u64,
        ValueSource::RequestBytes => info.request_size as u64,
        ValueSource::ResponseBytes => info.response_size as u64,
        ValueSource::RequestMessages => {
            let out = info
                .request_messages
                .wrapping_sub(info.last_request_messages);
            info.last_request_messages = info.request_messages;
            out
        }
        ValueSource::ResponseMessages => {
            let out = info
                .response_messages
                .wrapping_sub(info.last_response_messages);
            info.last_response_messages = info.response_messages;
            out
        }
        ValueSource::TcpSentBytes => std::mem::take(&mut info.tcp_sent_bytes),
        ValueSource::TcpReceivedBytes => std::mem::take(&mut info.tcp_received_bytes),
        ValueSource::TcpOpened => u64::from(std::mem::take(&mut info.tcp_opened)),
        ValueSource::TcpClosed => u64::from(info.tcp_closed),
        // A failed evaluation records 0 (`evaluateExpression` leaves the result at 0).
        ValueSource::Custom(i) => match fixed_values.get(i) {
            Some(Some(v)) => *v,
            _ => schema
                .value_exprs
                .get(i)
                .and_then(|e| scope.int(&e.program))
                .unwrap_or(0) as u64,
        },
    };
    if kind == MetricKind::Counter && value == 0 {
        return;
    }
    metrics.record(id, value);
}

#[cfg(test)]
mod decimal_tests {
    #[test]
    fn decimal_matches_to_string() {
        let mut buf = [0u8; 10];
        for n in [0, 7, 10, 200, 503, 65_535, u32::MAX] {
            assert_eq!(super::decimal(n, &mut buf), n.to_string());
        }
    }
}
