//! The state host calls work on. Each VM's `Store<VmHost>` holds its own part (memory, allocator,
//! contexts, metric ids); the process-wide [`World`] (stats, logs, shared data, virtual clock) and
//! the in-flight stream's [`StreamState`] are moved into the store for the duration of each call
//! into the VM (a pointer swap), so several VMs share them without locks.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use stats_sink::{StatsSink, VmMetricIds};
use wasmtime::{Memory, TypedFunc};

use crate::abi::{LogLevel, Status};
use crate::filter_state::FilterState;
use crate::profile::Profile;
use crate::properties::{PropertyView, RootRef};
use crate::stream::{Direction, HttpExchange, LocalNode, TcpConnection};

/// Who wrote a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// `proxy_log` / stdout / stderr of the named plugin (or the vm_id before any root exists).
    Plugin(String),
    /// The harness itself: load errors, traps, SDK-panic warnings, unresolved pauses.
    Harness,
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub source: LogSource,
    pub level: LogLevel,
    pub message: String,
}

impl LogEntry {
    /// The plugin name, or `None` for harness lines.
    pub fn plugin(&self) -> Option<&str> {
        match &self.source {
            LogSource::Plugin(p) => Some(p),
            LogSource::Harness => None,
        }
    }
}

/// A scripted answer to `proxy_http_call`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpCallResponse {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// What the harness does with a `proxy_http_call`.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpCallScript {
    /// Deliver this response.
    Respond(HttpCallResponse),
    /// Fail the call: `on_http_call_response(root, token, 0, 0, 0)`, status (11, "reset").
    Fail,
}

/// One shared queue (`proxy_register_shared_queue`).
#[derive(Debug, Default)]
pub struct SharedQueue {
    pub vm_id: String,
    pub name: String,
    /// (index of the VM in the proxy, root context id) that registered it.
    pub owner: (usize, u32),
    pub items: VecDeque<Vec<u8>>,
}

/// Shared data and queues (cpp-host `SharedData` / `SharedQueue`, process-wide, keyed by vm_id).
#[derive(Debug, Default)]
pub struct Shared {
    /// (vm_id, key) → (value, cas)
    pub data: HashMap<(String, String), (Vec<u8>, u32)>,
    pub next_cas: u32,
    pub queues: Vec<SharedQueue>,
    /// Queue ids that got items and whose owner must see `proxy_on_queue_ready`.
    pub ready: Vec<u32>,
}

/// Process-wide state shared by every VM of a [`crate::proxy::Proxy`].
pub struct World {
    pub stats: StatsSink,
    pub logs: Vec<LogEntry>,
    /// `proxy_get_log_level`; plugin lines below it are dropped (Envoy's `wasm` logger level).
    pub log_level: LogLevel,
    /// The virtual clock, ns since the Unix epoch (`proxy_get_current_time_nanoseconds`,
    /// `clock_time_get`).
    pub now_ns: i64,
    pub local_node: LocalNode,
    pub shared: Shared,
    /// Per host-call status overrides (fault injection): name (e.g. `proxy_get_property`) → status.
    pub faults: HashMap<String, i32>,
    /// Clusters `proxy_http_call` accepts (`None`: any non-empty name).
    pub http_clusters: Option<Vec<String>>,
    /// Scripted answers per cluster, consumed in order; `""` is the fallback for any cluster.
    pub http_scripts: HashMap<String, VecDeque<HttpCallScript>>,
    /// Deterministic `random_get` state (xorshift).
    pub random_state: u64,
    /// Foreign functions answered besides Envoy's built-ins: name → result bytes.
    pub foreign_functions: HashMap<String, Vec<u8>>,
}

impl World {
    pub fn new(local_node: LocalNode) -> World {
        World {
            stats: StatsSink::new(),
            logs: Vec::new(),
            log_level: LogLevel::Info,
            now_ns: 0,
            local_node,
            shared: Shared::default(),
            faults: HashMap::new(),
            http_clusters: None,
            http_scripts: HashMap::new(),
            random_state: 0x9E37_79B9_7F4A_7C15,
            foreign_functions: HashMap::new(),
        }
    }

    pub fn harness_log(&mut self, level: LogLevel, message: String) {
        self.logs.push(LogEntry {
            source: LogSource::Harness,
            level,
            message,
        });
    }
}

/// The facts of the in-flight stream. The pointers are set only while
/// [`crate::proxy::Proxy::run_http`] / `run_tcp` run, which hold the borrowed description for
/// their whole duration, and are reset to `None` before they return.
#[derive(Debug, Clone, Copy, Default)]
pub enum Facts {
    #[default]
    None,
    Http(*const HttpExchange),
    Tcp(*const TcpConnection),
}

// SAFETY: the pointee is only read, and only while the owning `run_*` call is on the stack.
unsafe impl Send for Facts {}
unsafe impl Sync for Facts {}

impl Facts {
    pub fn http(&self) -> Option<&HttpExchange> {
        match self {
            // SAFETY: see the type's invariant.
            Facts::Http(p) => Some(unsafe { &**p }),
            _ => None,
        }
    }
    pub fn tcp(&self) -> Option<&TcpConnection> {
        match self {
            // SAFETY: see the type's invariant.
            Facts::Tcp(p) => Some(unsafe { &**p }),
            _ => None,
        }
    }
    pub fn direction(&self) -> Option<Direction> {
        self.http()
            .map(|h| h.direction)
            .or_else(|| self.tcp().map(|t| t.direction))
    }
}

/// An action a plugin asked for during a callback, applied after it returns (Envoy
/// `addAfterVmCallAction`).
#[derive(Debug, Clone, PartialEq)]
pub enum Deferred {
    Continue(i32),
    Close(i32),
    LocalReply(LocalReply),
}

/// `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReply {
    pub status: u32,
    pub details: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// `None` when the plugin passed a value outside 0..=16 (the SDK passes -1).
    pub grpc_status: Option<i32>,
    /// The plugin that sent it.
    pub plugin: String,
}

/// Header maps of a stream, indexed by `proxy_map_type_t` 0..=3.
pub const MAP_REQ_HEADERS: usize = 0;
pub const MAP_REQ_TRAILERS: usize = 1;
pub const MAP_RESP_HEADERS: usize = 2;
pub const MAP_RESP_TRAILERS: usize = 3;

/// The in-flight HTTP stream or TCP connection.
#[derive(Default)]
pub struct StreamState {
    pub facts: Facts,
    /// Request headers, request trailers, response headers, response trailers.
    pub maps: [Vec<(String, String)>; 4],
    /// Which maps Envoy hands out in the current callback (its `request_headers_` etc. pointers).
    pub live: [bool; 4],
    /// Whether a response (upstream or local) has been seen (`response.code` etc. available).
    pub response_started: bool,
    /// The request headers went through the whole chain (router reached: upstream known).
    pub routed: bool,
    /// `proxy_on_log` phase: access-log copies, `request.duration`, total sizes.
    pub log_phase: bool,
    /// Which body/data buffer is readable now, and its bytes.
    pub buffer_type: Option<i32>,
    pub buffer: Vec<u8>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub response_code: Option<i64>,
    pub code_details: String,
    pub filter_state: FilterState,
    pub deferred: Vec<Deferred>,
    pub local_reply: Option<LocalReply>,
}

impl StreamState {
    /// Clears everything for the next stream, keeping allocations.
    pub fn reset(&mut self) {
        self.facts = Facts::None;
        for m in &mut self.maps {
            m.clear();
        }
        self.live = [false; 4];
        self.response_started = false;
        self.routed = false;
        self.log_phase = false;
        self.buffer_type = None;
        self.buffer.clear();
        self.bytes_received = 0;
        self.bytes_sent = 0;
        self.response_code = None;
        self.code_details.clear();
        self.filter_state.clear();
        self.deferred.clear();
        self.local_reply = None;
    }
}

/// Which restrictions cpp-host applies to host calls right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restriction {
    #[default]
    None,
    /// `_initialize`/`main` on Envoy ≥ 1.24.
    Start,
    /// Inside the module's allocator.
    Alloc,
}

/// What the callback being run is (decides which buffers and maps exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Idle,
    Start,
    VmStart,
    Configure,
    Tick,
    QueueReady,
    HttpCallResponse,
    Foreign,
    Stream,
}

/// Per root context: the plugin it belongs to.
#[derive(Debug, Clone)]
pub struct RootInfo {
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    pub plugin_configuration: Vec<u8>,
    /// `listener_direction` of the chain the plugin is in.
    pub direction: Option<Direction>,
    pub tick_period_ms: u64,
    pub next_tick_ns: i64,
}

/// An http call in flight: (token, root context, originating context, script).
#[derive(Debug, Clone)]
pub struct PendingHttpCall {
    pub token: u32,
    pub root: u32,
    pub script: HttpCallScript,
}

/// A map keyed by context id. Every host call looks the effective context up (twice), so the
/// keys are hashed with one multiply instead of SipHash: ids are small host-issued counters, not
/// attacker-chosen.
pub type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of a `u32` id (the high bits of `id * 2^64/φ` spread sequential ids).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys are hashed; this keeps any other use correct, if slower.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, id: u32) {
        self.0 = (u64::from(id) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The live contexts of a VM: id → root id. A short list, not a hash map: a VM holds its
/// plugins' roots and at most a stream context per plugin, each stream creates and destroys
/// one, and a push/swap-remove cost a third of a hash map insert/remove (callgrind, noop bench).
/// Looked up newest first: host calls are mostly made on the stream context, created last.
#[derive(Debug, Default, Clone)]
pub struct Contexts(Vec<(u32, u32)>);

impl Contexts {
    fn index(&self, id: u32) -> Option<usize> {
        self.0.iter().rposition(|(c, _)| *c == id)
    }

    pub fn get(&self, id: &u32) -> Option<&u32> {
        self.index(*id).map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, id: &u32) -> bool {
        self.index(*id).is_some()
    }

    /// Maps `id` to `root`, replacing an existing mapping.
    pub fn insert(&mut self, id: u32, root: u32) {
        match self.index(id) {
            Some(i) => self.0[i].1 = root,
            None => self.0.push((id, root)),
        }
    }

    pub fn remove(&mut self, id: &u32) -> Option<u32> {
        let i = self.index(*id)?;
        Some(self.0.swap_remove(i).1)
    }
}

/// Store data of one VM.
pub struct VmHost {
    pub profile: Profile,
    pub vm_id: String,
    /// Index of this VM in the proxy (queue ownership).
    pub vm_index: usize,
    pub vm_configuration: Vec<u8>,
    /// Environment variables for `environ_get` (`vm_config.environment_variables`).
    pub env_vars: Vec<(String, String)>,
    pub memory: Option<Memory>,
    /// The module's allocator (`malloc` or `proxy_on_memory_allocate`), set at instantiation.
    /// Behind an `Arc`: the call needs the function outside the store, and an `Arc` clone is
    /// cheaper than moving the `TypedFunc` (64 bytes) out and back on every call.
    pub alloc: Option<Arc<TypedFunc<i32, i32>>>,
    pub restriction: Restriction,
    pub phase: Phase,
    /// The context the current callback was called on, and the effective one.
    pub current_ctx: u32,
    pub effective_ctx: u32,
    /// Live contexts: id → root id (a root maps to itself).
    pub contexts: Contexts,
    pub roots: IdMap<RootInfo>,
    pub next_context_id: u32,
    pub metric_ids: VmMetricIds,
    pub world: Option<Box<World>>,
    pub stream: Option<Box<StreamState>>,
    /// Data of the current root callback: foreign-function args, http-call response.
    pub call_data: Vec<u8>,
    pub http_call_response: Option<HttpCallResponse>,
    pub http_calls: Vec<PendingHttpCall>,
    pub next_http_token: u32,
    /// `proxy_get_status` answer for the current http-call callback.
    pub last_status: (u32, String),
    /// Scratch buffer for serialising answers.
    pub scratch: Vec<u8>,
    /// `proxy_done` was called by a root.
    pub done_called: bool,
    /// Some root of this VM has set a tick period at some point (sticky): the clock looks for
    /// due ticks only in such VMs.
    pub ticking: bool,
}

impl VmHost {
    pub fn new(
        profile: Profile,
        vm_id: String,
        vm_index: usize,
        vm_configuration: Vec<u8>,
    ) -> VmHost {
        VmHost {
            profile,
            vm_id,
            vm_index,
            vm_configuration,
            env_vars: Vec::new(),
            memory: None,
            alloc: None,
            restriction: Restriction::None,
            phase: Phase::Idle,
            current_ctx: 0,
            effective_ctx: 0,
            contexts: Contexts::default(),
            roots: IdMap::default(),
            next_context_id: 1,
            metric_ids: VmMetricIds::default(),
            world: None,
            stream: None,
            call_data: Vec::new(),
            http_call_response: None,
            http_calls: Vec::new(),
            next_http_token: 0,
            last_status: (0, String::new()),
            scratch: Vec::new(),
            done_called: false,
            ticking: false,
        }
    }

    /// The root context of the effective context.
    pub fn effective_root(&self) -> Option<&RootInfo> {
        let root = self.contexts.get(&self.effective_ctx)?;
        self.roots.get(root)
    }

    /// What a property read sees (`None`: no world), and the scratch buffer to answer into.
    /// Borrowed field by field, so the buffer is not moved out and back around every read; the
    /// root's [`RootInfo`] is looked up only by the few properties that read it.
    pub fn property_view(&mut self) -> (Option<PropertyView<'_>>, &mut Vec<u8>) {
        let (root, stream) = match self.contexts.get(&self.effective_ctx) {
            Some(&root) if root != self.effective_ctx => (Some(root), self.stream.as_deref()),
            Some(&root) => (Some(root), None),
            None => (None, None),
        };
        let view = self.world.as_deref().map(|w| PropertyView {
            node: &w.local_node,
            root: RootRef::Lazy(&self.roots, root),
            stream,
        });
        (view, &mut self.scratch)
    }

    /// True when the effective context is a stream context.
    pub fn effective_is_stream(&self) -> bool {
        matches!(self.contexts.get(&self.effective_ctx), Some(r) if *r != self.effective_ctx)
    }

    /// The plugin name for log lines.
    pub fn log_source(&self) -> String {
        self.effective_root()
            .or_else(|| {
                self.contexts
                    .get(&self.current_ctx)
                    .and_then(|r| self.roots.get(r))
            })
            .map(|r| r.plugin_name.clone())
            .unwrap_or_else(|| self.vm_id.clone())
    }

    pub fn world(&mut self) -> Option<&mut World> {
        self.world.as_deref_mut()
    }

    /// The stream state if the effective context is a stream.
    pub fn stream_for_effective(&self) -> Option<&StreamState> {
        if self.effective_is_stream() {
            self.stream.as_deref()
        } else {
            None
        }
    }

    pub fn status_name(s: Status) -> &'static str {
        match s {
            Status::Ok => "OK",
            Status::NotFound => "NOT_FOUND",
            Status::BadArgument => "BAD_ARGUMENT",
            Status::SerializationFailure => "SERIALIZATION_FAILURE",
            Status::ParseFailure => "PARSE_FAILURE",
            Status::BadExpression => "BAD_EXPRESSION",
            Status::InvalidMemoryAccess => "INVALID_MEMORY_ACCESS",
            Status::Empty => "EMPTY",
            Status::CasMismatch => "CAS_MISMATCH",
            Status::ResultMismatch => "RESULT_MISMATCH",
            Status::InternalFailure => "INTERNAL_FAILURE",
            Status::BrokenConnection => "BROKEN_CONNECTION",
            Status::Unimplemented => "UNIMPLEMENTED",
        }
    }
}
