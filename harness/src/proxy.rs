//! The state-based API: a [`Proxy`] plays one Envoy (a profile + a local node) with the filter
//! chains of a [`ChainSet`]; tests and the CLI drive it stream by stream.
//!
//! ```ignore
//! let mut proxy = Proxy::new(Profile::ISTIO_1_17, node);
//! let report = proxy.load(&chains, &|code| resolve(code))?;     // what `harness check` prints
//! let out = proxy.run_http(&exchange);                           // Envoy's callback order
//! proxy.stats();  proxy.logs();
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use envoyfilter_model::chain::{ChainSet, Context, FilterKind, WasmCode, WasmFilter};
use wasmtime::Linker;

use crate::abi::LogLevel;
use crate::filter_chain::HttpChain;
use crate::filter_state::FilterState;
use crate::host_state::{
    HttpCallScript, LocalReply, LogEntry, Phase, RootInfo, StreamState, VmHost, World,
};
use crate::metadata_exchange::{is_mx, LocalMx, MxCache};
use crate::profile::Profile;
use crate::stream::{Direction, LocalNode, Reload};
use crate::vm::cache::{content_key, ModuleCache};
use crate::vm::{validate, CallError, TrapReport, Vm};

pub use crate::vm::watchdog::DEFAULT_DEADLINE;

/// One filter of an instantiated chain.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainEntry {
    /// A Wasm plugin (index into the proxy's plugins).
    Wasm(usize),
    /// `istio.metadata_exchange` emulation.
    MetadataExchange,
    /// `envoy.filters.http.grpc_stats` (by its type, whatever its name): with
    /// `emit_filter_state` it writes the message counts the stats plugin reads.
    GrpcStats,
    /// A native filter the harness passes through.
    PassThrough(String),
}

/// Envoy picks a filter's factory by its `typed_config` type, not its name (Istio's own tests
/// name grpc_stats `grpc_stats`). Every native filter in a chain has a type: the model rejects
/// a filter with neither `typed_config` nor `config_discovery`.
const GRPC_STATS_TYPE: &str = "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig";
const ROUTER_TYPE: &str = "envoy.extensions.filters.http.router.v3.Router";
const TCP_PROXY_TYPE: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

/// grpc_stats writes its `envoy.filters.http.grpc_stats` filter state only with
/// `emit_filter_state: true` (proto JSON accepts the lowerCamelCase name too); without it the
/// filter only counts in Envoy's own stats, which the harness does not model.
fn emits_filter_state(config: &serde_json::Map<String, serde_json::Value>) -> bool {
    ["emit_filter_state", "emitFilterState"]
        .iter()
        .any(|k| config.get(*k) == Some(&serde_json::Value::Bool(true)))
}

/// A loaded plugin: one root context in one VM.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub filter_name: String,
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    pub vm: usize,
    pub root_ctx: u32,
    pub fail_open: bool,
    /// The stream context of the in-flight stream (0: not created yet).
    pub(crate) stream_ctx: u32,
    /// The filter failed on this stream and is skipped for its remainder (fail open).
    pub(crate) skip: bool,
}

/// Outcome of loading one Wasm filter.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginLoad {
    pub context: Context,
    pub network: bool,
    pub filter_name: String,
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    /// `None` when loaded; `Some(reason)` when a fail-open plugin was skipped.
    pub skipped: Option<String>,
    /// The plugin shares a VM (same vm_id, configuration and code) loaded earlier.
    pub shared_vm: bool,
    /// Log lines written while starting and configuring it.
    pub logs: Vec<LogEntry>,
}

/// What `load` did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadReport {
    pub plugins: Vec<PluginLoad>,
    /// Per (context, network?) the instantiated chain, filter names in order.
    pub chains: Vec<(Context, bool, Vec<String>)>,
}

/// A plugin Envoy would reject (the listener update is NACKed).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub context: Context,
    pub filter_name: String,
    pub plugin_name: String,
    /// Envoy's message, e.g. `Failed to configure base Wasm plugin`.
    pub message: String,
    pub trap: Option<TrapReport>,
    pub logs: Vec<LogEntry>,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} filter {} (plugin {}): {}",
            self.context, self.filter_name, self.plugin_name, self.message
        )?;
        if let Some(t) = &self.trap {
            write!(f, "\n{t}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// One callback the host made (recorded when tracing is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    pub plugin: String,
    /// e.g. `proxy_on_request_headers(2, 5, 0)`.
    pub call: String,
    /// The returned value, if any.
    pub result: Option<i32>,
}

/// Outcome of one HTTP stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpOutcome {
    /// The local reply sent (by a plugin, or `wasm_fail_stream` on failure).
    pub local_reply: Option<LocalReply>,
    /// A plugin paused and never resumed: the stream stalled in the request (`Some(true)`) or
    /// response (`Some(false)`) path. The harness still runs the log phase.
    pub stalled_request: bool,
    pub stalled_response: bool,
    /// A plugin closed the stream (`proxy_close_stream`).
    pub reset: bool,
    pub response_code: Option<i64>,
    /// Request headers as the upstream saw them (after all filters) and response headers as the
    /// client saw them.
    pub upstream_request_headers: Vec<(String, String)>,
    pub downstream_response_headers: Vec<(String, String)>,
    pub filter_state: FilterState,
    pub traps: Vec<TrapReport>,
    pub callbacks: Vec<CallbackRecord>,
}

/// Outcome of one TCP connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TcpOutcome {
    pub closed_by_plugin: bool,
    pub filter_state: FilterState,
    pub traps: Vec<TrapReport>,
    pub callbacks: Vec<CallbackRecord>,
}

/// An Envoy stand-in.
pub struct Proxy {
    pub(crate) profile: Profile,
    pub(crate) cache: ModuleCache,
    pub(crate) linker: Linker<VmHost>,
    pub(crate) world: Option<Box<World>>,
    pub(crate) stream: Option<Box<StreamState>>,
    pub(crate) vms: Vec<Vm>,
    pub(crate) plugins: Vec<Plugin>,
    pub(crate) http_chains: BTreeMap<Context, Arc<HttpChain>>,
    pub(crate) network_chains: BTreeMap<Context, Arc<[ChainEntry]>>,
    pub(crate) local_mx: LocalMx,
    pub(crate) mx_cache: MxCache,
    pub(crate) deadline_ticks: u64,
    pub(crate) trace: bool,
    pub(crate) clock_started: bool,
    pub(crate) canary: bool,
    /// Scratch for the current stream's callback records and traps.
    pub(crate) records: Vec<CallbackRecord>,
    pub(crate) traps: Vec<TrapReport>,
    /// What the grpc_stats filter state holds from the current stream's request headers on.
    pub(crate) grpc_at_headers: Option<(u64, u64)>,
    /// Set when the replay stopped inside an open HTTP stream: that stream's context ids.
    pub(crate) open_stream: Option<Vec<u32>>,
    /// The chains and module bytes of the last `load`, for reloads.
    pub(crate) loaded: Option<LoadedConfig>,
    /// VMs below this index were retired by a reload with new VMs: never reused, never ticked.
    pub(crate) live_vms_from: usize,
}

/// What [`Proxy::load`] was given, kept so a reload can deliver it again.
pub(crate) struct LoadedConfig {
    chains: ChainSet,
    /// Module bytes per `vm_config.code`, as the resolver answered at load.
    codes: Vec<(WasmCode, Vec<u8>)>,
}

pub(crate) fn context_of(dir: Direction) -> Context {
    match dir {
        Direction::Inbound => Context::SidecarInbound,
        Direction::Outbound => Context::SidecarOutbound,
        Direction::Gateway => Context::Gateway,
    }
}

fn direction_of(ctx: Context) -> Direction {
    match ctx {
        Context::SidecarInbound => Direction::Inbound,
        Context::SidecarOutbound => Direction::Outbound,
        Context::Gateway => Direction::Gateway,
    }
}

impl Proxy {
    /// A proxy with its own module cache.
    pub fn new(profile: Profile, local_node: LocalNode) -> Proxy {
        Proxy::with_cache(profile, local_node, ModuleCache::new())
    }

    /// A proxy sharing a module cache (compiled modules are reused across proxies).
    pub fn with_cache(profile: Profile, local_node: LocalNode, cache: ModuleCache) -> Proxy {
        let linker = crate::host_calls::linker(cache.engine(), &profile)
            .unwrap_or_else(|_| Linker::new(cache.engine()));
        let local_mx = LocalMx::new(&local_node);
        Proxy {
            profile,
            cache,
            linker,
            world: Some(Box::new(World::new(local_node))),
            stream: Some(Box::default()),
            vms: Vec::new(),
            plugins: Vec::new(),
            http_chains: BTreeMap::new(),
            network_chains: BTreeMap::new(),
            local_mx,
            mx_cache: MxCache::default(),
            deadline_ticks: crate::vm::watchdog::deadline_ticks(DEFAULT_DEADLINE),
            trace: false,
            clock_started: false,
            canary: false,
            records: Vec::new(),
            traps: Vec::new(),
            grpc_at_headers: None,
            open_stream: None,
            loaded: None,
            live_vms_from: 0,
        }
    }

    /// The context ids (one per Wasm filter) of the HTTP stream the replay stopped inside
    /// (`stop_after_ms`), if it did. The proxy runs no further stream or reload after that.
    pub fn open_stream(&self) -> Option<&[u32]> {
        self.open_stream.as_deref()
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    pub(crate) fn world(&self) -> &World {
        self.world
            .as_deref()
            .expect("the world is only moved out during a VM call")
    }

    pub(crate) fn world_mut(&mut self) -> &mut World {
        self.world
            .as_deref_mut()
            .expect("the world is only moved out during a VM call")
    }

    /// Envoy's stats store.
    pub fn stats(&self) -> &stats_sink::StatsSink {
        &self.world().stats
    }

    /// Every captured log line (plugins and harness), in order.
    pub fn logs(&self) -> &[LogEntry] {
        &self.world().logs
    }

    /// Drops captured log lines (long replays).
    pub fn clear_logs(&mut self) {
        self.world_mut().logs.clear();
    }

    /// Envoy's `wasm` log level (default `info`): what `proxy_get_log_level` answers and the
    /// threshold for capturing plugin lines.
    pub fn set_log_level(&mut self, level: LogLevel) {
        self.world_mut().log_level = level;
    }

    /// Wall-clock budget of one callback (the runaway-loop guard, see [`crate::vm::watchdog`]);
    /// past it the callback traps with `interrupt`. Default [`DEFAULT_DEADLINE`].
    pub fn set_call_deadline(&mut self, deadline: std::time::Duration) {
        let ticks = crate::vm::watchdog::deadline_ticks(deadline);
        self.deadline_ticks = ticks;
        for vm in &mut self.vms {
            vm.deadline_ticks = ticks;
        }
    }

    /// Run each new plugin's start and configure on a throwaway canary VM first, as Envoy does
    /// (so `proxy_on_vm_start` / `proxy_on_configure` run twice). Off by default.
    pub fn set_canary(&mut self, on: bool) {
        self.canary = on;
    }

    /// Record every callback in the outcomes (`callbacks`).
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    /// Fault injection: host call `name` (e.g. `proxy_get_property`) returns `status` without
    /// doing anything. `None` removes the override.
    pub fn inject_status(&mut self, name: &str, status: Option<i32>) {
        let w = self.world_mut();
        match status {
            Some(s) => {
                w.faults.insert(name.to_string(), s);
            }
            None => {
                w.faults.remove(name);
            }
        }
    }

    /// Scripts the next `proxy_http_call` to `cluster` (`""`: any cluster).
    pub fn script_http_call(&mut self, cluster: &str, script: HttpCallScript) {
        self.world_mut()
            .http_scripts
            .entry(cluster.to_string())
            .or_default()
            .push_back(script);
    }

    /// Restricts the clusters `proxy_http_call` accepts (default: any non-empty name).
    pub fn set_http_clusters(&mut self, clusters: Option<Vec<String>>) {
        self.world_mut().http_clusters = clusters;
    }

    /// Answers foreign function `name` with fixed bytes.
    pub fn register_foreign_function(&mut self, name: &str, result: Vec<u8>) {
        self.world_mut()
            .foreign_functions
            .insert(name.to_string(), result);
    }

    /// The virtual clock (ns since the epoch).
    pub fn now(&self) -> i64 {
        self.world().now_ns
    }

    /// Sets the virtual clock without firing ticks, re-basing every timer on it (use before the
    /// first event of a replay).
    pub fn set_clock(&mut self, ns: i64) {
        self.world_mut().now_ns = ns;
        self.clock_started = true;
        for vm in &mut self.vms {
            for r in vm.store.data_mut().roots.values_mut() {
                if r.tick_period_ms > 0 {
                    r.next_tick_ns = ns.saturating_add(r.tick_period_ms as i64 * 1_000_000);
                }
            }
        }
    }

    /// The chain instantiated for a context.
    pub fn http_chain(&self, ctx: Context) -> Option<&[ChainEntry]> {
        self.http_chains.get(&ctx).map(|v| &v.entries[..])
    }

    pub fn network_chain(&self, ctx: Context) -> Option<&[ChainEntry]> {
        self.network_chains.get(&ctx).map(|v| &v[..])
    }

    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The trap that poisoned a plugin's VM, if any.
    pub fn poisoned(&self, plugin: usize) -> Option<&TrapReport> {
        self.plugins
            .get(plugin)
            .and_then(|p| self.vms.get(p.vm))
            .and_then(|vm| vm.poisoned.as_ref())
    }

    /// The tick period a plugin's root asked for (ms; 0 = none).
    pub fn tick_period_ms(&self, plugin: usize) -> u64 {
        self.plugins
            .get(plugin)
            .and_then(|p| {
                self.vms
                    .get(p.vm)
                    .and_then(|vm| vm.store.data().roots.get(&p.root_ctx))
            })
            .map(|r| r.tick_period_ms)
            .unwrap_or(0)
    }

    /// Loads every chain of `chains`. Wasm code comes from `resolver`. A plugin Envoy would
    /// reject fails the whole load (fail-open plugins are skipped instead, as Envoy does).
    // LoadError carries the trap report and log lines by value (a public type; not boxed).
    #[allow(clippy::result_large_err)]
    pub fn load(
        &mut self,
        chains: &ChainSet,
        resolver: &dyn Fn(&WasmCode) -> Result<Vec<u8>, String>,
    ) -> Result<LoadReport, LoadError> {
        let codes = std::cell::RefCell::new(Vec::<(WasmCode, Vec<u8>)>::new());
        let remembering = |code: &WasmCode| -> Result<Vec<u8>, String> {
            if let Some((_, b)) = codes.borrow().iter().find(|(c, _)| c == code) {
                return Ok(b.clone());
            }
            let bytes = resolver(code)?;
            codes.borrow_mut().push((code.clone(), bytes.clone()));
            Ok(bytes)
        };
        let report = self.load_chains(chains, &remembering)?;
        self.loaded = Some(LoadedConfig {
            chains: chains.clone(),
            codes: codes.into_inner(),
        });
        Ok(report)
    }

    /// A listener update that delivers the configuration of the last `load` again (Envoy: new filter
    /// configs → new plugin handles). The clock first runs to `reload.at_ns` (ticks due fire).
    /// Then every current root context is shut down as cpp-host's `startShutdown` does:
    /// `proxy_on_done(root)`, and `proxy_on_delete(root)` when it returned true; its timer
    /// stops. New root contexts are started and configured (`proxy_on_context_create` →
    /// `proxy_on_vm_start` → `proxy_on_configure`) in new VMs (`new_vm`, as when the VM key
    /// changed) or in the running ones (a changed plugin configuration). The stats store is
    /// Envoy's, not the VM's: every counter keeps its value and the new VMs define the same
    /// names onto the same stats.
    ///
    /// Not modelled: Envoy skips a listener update whose config hash is unchanged
    /// (`ListenerManagerImpl::addOrUpdateListener`), and reuses the very same plugin handle (no
    /// new root context at all) when an identical plugin key is still held by the draining
    /// listener (cpp-host `getOrCreateThreadLocalPlugin`); streams in flight on the old listener
    /// finish on the old root (the replay has none in flight between events).
    // LoadError carries the trap report and log lines by value (a public type; not boxed).
    #[allow(clippy::result_large_err)]
    pub fn reload(&mut self, reload: &Reload) -> Result<LoadReport, LoadError> {
        let err = |message: String| LoadError {
            context: Context::SidecarOutbound,
            filter_name: String::new(),
            plugin_name: String::new(),
            message,
            trap: None,
            logs: Vec::new(),
        };
        if self.open_stream.is_some() {
            return Err(err(
                "the replay stopped inside an open stream (stop_after_ms): no reload after it"
                    .into(),
            ));
        }
        let Some(loaded) = self.loaded.take() else {
            return Err(err("nothing was loaded: no configuration to reload".into()));
        };
        self.advance_to(reload.at_ns);
        self.shut_down_roots();
        if reload.new_vm {
            self.retire_vms();
        }
        self.plugins.clear();
        self.http_chains.clear();
        self.network_chains.clear();
        let codes = &loaded.codes;
        let resolver = |code: &WasmCode| -> Result<Vec<u8>, String> {
            codes
                .iter()
                .find(|(c, _)| c == code)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| "module not loaded before the reload".to_string())
        };
        let result = self.load_chains(&loaded.chains, &resolver);
        self.loaded = Some(loaded);
        result
    }

    /// Retires every live VM: its instance memory is released (the store is replaced by an
    /// empty one) and it is marked failed, so nothing can call into it again; its index stays
    /// (VM indices key the per-VM metric ids and queue owners).
    fn retire_vms(&mut self) {
        for vi in self.live_vms_from..self.vms.len() {
            let vm_id = self.vms[vi].key.0.clone();
            let empty = wasmtime::Store::new(
                self.cache.engine(),
                VmHost::new(self.profile, vm_id.clone(), vi, Vec::new()),
            );
            let vm = &mut self.vms[vi];
            vm.store = empty;
            if vm.poisoned.is_none() {
                vm.poisoned = Some(TrapReport {
                    plugin: vm_id,
                    callback: "reload".into(),
                    message: "VM retired by a reload with new VMs".into(),
                    backtrace: Vec::new(),
                });
            }
        }
        self.live_vms_from = self.vms.len();
    }

    /// `proxy_on_done` then (when it returned true) `proxy_on_delete` on every live root
    /// context, each once; the roots are then forgotten (no more ticks).
    fn shut_down_roots(&mut self) {
        let mut roots: Vec<(usize, u32)> =
            self.plugins.iter().map(|p| (p.vm, p.root_ctx)).collect();
        roots.sort_unstable();
        roots.dedup();
        for (vi, root) in roots {
            let Some(vm) = self.vms.get_mut(vi) else {
                continue;
            };
            if vm.poisoned.is_none() {
                let done = vm.call_ex(
                    &mut self.world,
                    &mut self.stream,
                    Phase::Tick,
                    root,
                    "proxy_on_done",
                    |ex, s| {
                        Ok(match &ex.on_done {
                            Some(f) => f.call(&mut *s, root as i32)? != 0,
                            None => true,
                        })
                    },
                );
                if self.trace {
                    self.record_root(vi, root, format!("proxy_on_done({root})"), None);
                }
                let vm = &mut self.vms[vi];
                match done {
                    Ok(true) => {
                        let _ = vm.call_ex(
                            &mut self.world,
                            &mut self.stream,
                            Phase::Tick,
                            root,
                            "proxy_on_delete",
                            |ex, s| {
                                if let Some(f) = &ex.on_delete {
                                    f.call(&mut *s, root as i32)?;
                                }
                                Ok(())
                            },
                        );
                        if self.trace {
                            self.record_root(vi, root, format!("proxy_on_delete({root})"), None);
                        }
                    }
                    Ok(false) => self.world_mut().harness_log(
                        LogLevel::Info,
                        format!(
                            "reload: root context {root} returned false from proxy_on_done; the harness drops it without waiting for proxy_done"
                        ),
                    ),
                    Err(_) => {}
                }
            }
            let h = self.vms[vi].store.data_mut();
            h.roots.remove(&root);
            h.contexts.remove(&root);
        }
    }

    // LoadError carries the trap report and log lines by value (a public type; not boxed).
    #[allow(clippy::result_large_err)]
    fn load_chains(
        &mut self,
        chains: &ChainSet,
        resolver: &dyn Fn(&WasmCode) -> Result<Vec<u8>, String>,
    ) -> Result<LoadReport, LoadError> {
        let mut report = LoadReport::default();
        let all = chains
            .http
            .iter()
            .map(|(c, f)| (*c, false, f))
            .chain(chains.network.iter().map(|(c, f)| (*c, true, f)));
        for (ctx, network, filters) in all {
            let mut entries = Vec::new();
            let mut names = Vec::new();
            for f in filters {
                match &f.kind {
                    FilterKind::Native { type_url, .. } if is_mx(&f.name, Some(type_url)) => {
                        entries.push(ChainEntry::MetadataExchange);
                    }
                    FilterKind::Native { type_url, config } => {
                        let ty = envoyfilter_model::typed_config::type_name(type_url);
                        entries.push(
                            if ty == GRPC_STATS_TYPE && !network && emits_filter_state(config) {
                                ChainEntry::GrpcStats
                            } else {
                                ChainEntry::PassThrough(f.name.clone())
                            },
                        );
                        names.push(f.name.clone());
                        // The router / tcp_proxy end the chain.
                        if ty == ROUTER_TYPE || ty == TCP_PROXY_TYPE {
                            break;
                        }
                        continue;
                    }
                    FilterKind::Wasm(w)
                        if is_mx(&f.name, None)
                            || matches!(&w.code, WasmCode::InlineString(s) if s.contains("metadata_exchange")) =>
                    {
                        entries.push(ChainEntry::MetadataExchange);
                    }
                    FilterKind::Wasm(w) => {
                        match self.load_plugin(ctx, network, &f.name, w, resolver) {
                            Ok((idx, load)) => {
                                entries.push(ChainEntry::Wasm(idx));
                                report.plugins.push(load);
                            }
                            Err(e) if w.fail_open => {
                                // Envoy: a fail-open plugin that fails to load is left out.
                                self.world_mut().harness_log(
                                    LogLevel::Warn,
                                    format!("fail_open plugin skipped: {e}"),
                                );
                                report.plugins.push(PluginLoad {
                                    context: ctx,
                                    network,
                                    filter_name: f.name.clone(),
                                    plugin_name: w.plugin_name.clone(),
                                    root_id: w.root_id.clone(),
                                    vm_id: w.vm_id.clone(),
                                    skipped: Some(e.message.clone()),
                                    shared_vm: false,
                                    logs: e.logs.clone(),
                                });
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                names.push(f.name.clone());
            }
            report.chains.push((ctx, network, names));
            if network {
                self.network_chains.insert(ctx, Arc::from(entries));
            } else {
                self.http_chains
                    .insert(ctx, Arc::new(HttpChain::new(entries)));
            }
        }
        Ok(report)
    }

    // LoadError carries the trap report and log lines by value (a public type; not boxed).
    #[allow(clippy::result_large_err)]
    fn load_plugin(
        &mut self,
        ctx: Context,
        network: bool,
        filter_name: &str,
        w: &WasmFilter,
        resolver: &dyn Fn(&WasmCode) -> Result<Vec<u8>, String>,
    ) -> Result<(usize, PluginLoad), LoadError> {
        let log_start = self.world().logs.len();
        let err = |this: &Proxy, message: String, trap: Option<TrapReport>| LoadError {
            context: ctx,
            filter_name: filter_name.to_string(),
            plugin_name: w.plugin_name.clone(),
            message,
            trap,
            logs: this.world().logs[log_start..].to_vec(),
        };
        let bytes = resolver(&w.code)
            .map_err(|e| err(self, format!("Failed to load Wasm code: {e}"), None))?;
        let code_key = content_key(&bytes);
        let vm_key = (w.vm_id.clone(), w.vm_configuration.clone(), code_key);
        let mut shared_vm = true;
        let live_from = self.live_vms_from;
        let vm_idx = match self
            .vms
            .iter()
            .skip(live_from)
            .position(|v| v.key == vm_key && v.poisoned.is_none())
        {
            Some(i) => live_from + i,
            None => {
                shared_vm = false;
                let module = self.cache.get(&bytes).map_err(|e| err(self, e, None))?;
                let host = VmHost::new(
                    self.profile,
                    w.vm_id.clone(),
                    self.vms.len(),
                    w.vm_configuration.clone(),
                );
                let mut probe = wasmtime::Store::new(
                    self.cache.engine(),
                    VmHost::new(self.profile, String::new(), 0, Vec::new()),
                );
                validate(&module, &self.linker, &mut probe).map_err(|m| err(self, m, None))?;
                let vm = Vm::instantiate(
                    &self.linker,
                    &module,
                    host,
                    vm_key,
                    &mut self.world,
                    self.deadline_ticks,
                )
                .map_err(|t| err(self, "Failed to initialize Wasm code".into(), Some(t)))?;
                self.vms.push(vm);
                self.vms.len() - 1
            }
        };
        // Plugins with the same root id and configuration share a root context (cpp-host plugin key).
        let existing = self.plugins.iter().position(|p| {
            p.vm == vm_idx
                && p.root_id == w.root_id
                && p.plugin_name == w.plugin_name
                && self.vms[vm_idx]
                    .store
                    .data()
                    .roots
                    .get(&p.root_ctx)
                    .map(|r| r.plugin_configuration == w.configuration)
                    .unwrap_or(false)
        });
        let idx = match existing {
            Some(i) => i,
            None => {
                if self.canary {
                    // Envoy first starts and configures the plugin on a throwaway clone
                    // (cpp-host `WasmHandleBase::canary`); its failures reject the config.
                    let module = self.cache.get(&bytes).map_err(|e| err(self, e, None))?;
                    let host = VmHost::new(
                        self.profile,
                        w.vm_id.clone(),
                        usize::MAX,
                        w.vm_configuration.clone(),
                    );
                    let mut canary = Vm::instantiate(
                        &self.linker,
                        &module,
                        host,
                        (String::new(), Vec::new(), String::new()),
                        &mut self.world,
                        self.deadline_ticks,
                    )
                    .map_err(|t| err(self, "Failed to initialize Wasm code".into(), Some(t)))?;
                    start_root(&mut canary, &mut self.world, w, direction_of(ctx))
                        .map_err(|(m, t)| err(self, m, t))?;
                }
                let root = start_root(&mut self.vms[vm_idx], &mut self.world, w, direction_of(ctx))
                    .map_err(|(m, t)| err(self, m, t))?;
                if self.clock_started {
                    let now = self.world().now_ns;
                    if let Some(r) = self.vms[vm_idx].store.data_mut().roots.get_mut(&root) {
                        if r.tick_period_ms > 0 {
                            r.next_tick_ns =
                                now.saturating_add(r.tick_period_ms as i64 * 1_000_000);
                        }
                    }
                }
                self.plugins.push(Plugin {
                    filter_name: filter_name.to_string(),
                    plugin_name: w.plugin_name.clone(),
                    root_id: w.root_id.clone(),
                    vm_id: w.vm_id.clone(),
                    vm: vm_idx,
                    root_ctx: root,
                    fail_open: w.fail_open,
                    stream_ctx: 0,
                    skip: false,
                });
                self.plugins.len() - 1
            }
        };
        let load = PluginLoad {
            context: ctx,
            network,
            filter_name: filter_name.to_string(),
            plugin_name: w.plugin_name.clone(),
            root_id: w.root_id.clone(),
            vm_id: w.vm_id.clone(),
            skipped: None,
            shared_vm,
            logs: self.world().logs[log_start..].to_vec(),
        };
        Ok((idx, load))
    }
}

/// Creates a root context for `w` in `vm` and runs `proxy_on_context_create(R, 0)` →
/// `proxy_on_vm_start(R, vm_config_len)` → `proxy_on_configure(R, config_len)` (cpp-host
/// `WasmBase::start` + `configure`). Errors carry Envoy's message.
fn start_root(
    vm: &mut Vm,
    world: &mut Option<Box<World>>,
    w: &WasmFilter,
    dir: Direction,
) -> Result<u32, (String, Option<TrapReport>)> {
    let h = vm.store.data_mut();
    let root = h.next_context_id;
    h.next_context_id += 1;
    h.contexts.insert(root, root);
    h.roots.insert(
        root,
        RootInfo {
            plugin_name: w.plugin_name.clone(),
            root_id: w.root_id.clone(),
            vm_id: w.vm_id.clone(),
            plugin_configuration: w.configuration.clone(),
            direction: Some(dir),
            tick_period_ms: 0,
            next_tick_ns: 0,
        },
    );
    let vm_cfg_len = w.vm_configuration.len() as i32;
    let cfg_len = w.configuration.len() as i32;
    let mut none = None;
    const START: &str = "Failed to start base Wasm";
    const CONFIGURE: &str = "Failed to configure base Wasm plugin";
    let r = vm.call_ex(
        world,
        &mut none,
        Phase::VmStart,
        root,
        "proxy_on_context_create",
        |ex, s| {
            if let Some(f) = &ex.on_context_create {
                f.call(&mut *s, (root as i32, 0))?;
            }
            Ok(())
        },
    );
    if let Err(CallError::Trap(t) | CallError::Poisoned(t)) = r {
        return Err((START.into(), Some(*t)));
    }
    let started = vm.call_ex(
        world,
        &mut none,
        Phase::VmStart,
        root,
        "proxy_on_vm_start",
        |ex, s| {
            Ok(match &ex.on_vm_start {
                Some(f) => f.call(&mut *s, (root as i32, vm_cfg_len))? != 0,
                None => true,
            })
        },
    );
    match started {
        Ok(true) => {}
        Ok(false) => return Err((START.into(), None)),
        Err(CallError::Trap(t) | CallError::Poisoned(t)) => return Err((START.into(), Some(*t))),
    }
    let configured = vm.call_ex(
        world,
        &mut none,
        Phase::Configure,
        root,
        "proxy_on_configure",
        |ex, s| {
            Ok(match &ex.on_configure {
                Some(f) => f.call(&mut *s, (root as i32, cfg_len))? != 0,
                None => true,
            })
        },
    );
    match configured {
        Ok(true) => Ok(root),
        Ok(false) => Err((CONFIGURE.into(), None)),
        Err(CallError::Trap(t) | CallError::Poisoned(t)) => Err((CONFIGURE.into(), Some(*t))),
    }
}
