//! Drivers that turn stream descriptions into Envoy's callback sequences (abi-host §1.4), the
//! virtual clock with `proxy_on_tick`, and delivery of http-call responses and queue
//! notifications after the callback that caused them.

mod http;

pub(crate) use http::HttpChain;
mod tcp;

use crate::host_state::{HttpCallScript, Phase};
use crate::proxy::{CallbackRecord, Proxy};
use crate::vm::{CallError, TrapReport};

/// A stream callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cb {
    RequestHeaders(i32, bool),
    RequestBody(i32, bool),
    RequestTrailers(i32),
    ResponseHeaders(i32, bool),
    ResponseBody(i32, bool),
    ResponseTrailers(i32),
    Log,
    Done,
    Delete,
    NewConnection,
    DownstreamData(i32, bool),
    UpstreamData(i32, bool),
    DownstreamClose(i32),
    UpstreamClose(i32),
}

impl Cb {
    fn name(self) -> &'static str {
        match self {
            Cb::RequestHeaders(..) => "proxy_on_request_headers",
            Cb::RequestBody(..) => "proxy_on_request_body",
            Cb::RequestTrailers(..) => "proxy_on_request_trailers",
            Cb::ResponseHeaders(..) => "proxy_on_response_headers",
            Cb::ResponseBody(..) => "proxy_on_response_body",
            Cb::ResponseTrailers(..) => "proxy_on_response_trailers",
            Cb::Log => "proxy_on_log",
            Cb::Done => "proxy_on_done",
            Cb::Delete => "proxy_on_delete",
            Cb::NewConnection => "proxy_on_new_connection",
            Cb::DownstreamData(..) => "proxy_on_downstream_data",
            Cb::UpstreamData(..) => "proxy_on_upstream_data",
            Cb::DownstreamClose(..) => "proxy_on_downstream_connection_close",
            Cb::UpstreamClose(..) => "proxy_on_upstream_connection_close",
        }
    }

    fn args(self, ctx: u32) -> String {
        let c = ctx as i32;
        match self {
            Cb::RequestHeaders(a, e)
            | Cb::RequestBody(a, e)
            | Cb::ResponseHeaders(a, e)
            | Cb::ResponseBody(a, e)
            | Cb::DownstreamData(a, e)
            | Cb::UpstreamData(a, e) => format!("({c}, {a}, {})", e as i32),
            Cb::RequestTrailers(a)
            | Cb::ResponseTrailers(a)
            | Cb::DownstreamClose(a)
            | Cb::UpstreamClose(a) => {
                format!("({c}, {a})")
            }
            _ => format!("({c})"),
        }
    }
}

/// Bound on callouts/queue notifications chained from one callback (a plugin that issues a new
/// http call from every response would otherwise loop forever).
const MAX_FOLLOW_UPS: usize = 1000;

impl Proxy {
    fn record(&mut self, plugin: usize, call: String, result: Option<i32>) {
        if self.trace {
            let name = self
                .plugins
                .get(plugin)
                .map(|p| p.plugin_name.clone())
                .unwrap_or_default();
            self.records.push(CallbackRecord {
                plugin: name,
                call,
                result,
            });
        }
    }

    pub(crate) fn record_root(&mut self, vm: usize, root: u32, call: String, result: Option<i32>) {
        if self.trace {
            let name = self.vms[vm]
                .store
                .data()
                .roots
                .get(&root)
                .map(|r| r.plugin_name.clone())
                .unwrap_or_default();
            self.records.push(CallbackRecord {
                plugin: name,
                call,
                result,
            });
        }
    }

    /// Creates the plugin's stream context if needed (`proxy_on_context_create(S, R)`).
    pub(crate) fn ensure_stream_ctx(&mut self, p: usize) -> Result<u32, CallError> {
        let plugin = &self.plugins[p];
        if plugin.stream_ctx != 0 {
            return Ok(plugin.stream_ctx);
        }
        let (vi, root) = (plugin.vm, plugin.root_ctx);
        let vm = &mut self.vms[vi];
        if let Some(t) = &vm.poisoned {
            return Err(CallError::Poisoned(Box::new(t.clone())));
        }
        let h = vm.store.data_mut();
        let ctx = h.next_context_id;
        h.next_context_id += 1;
        h.contexts.insert(ctx, root);
        self.plugins[p].stream_ctx = ctx;
        let r = vm.call_ex(
            &mut self.world,
            &mut self.stream,
            Phase::Stream,
            ctx,
            "proxy_on_context_create",
            |ex, s| {
                if let Some(f) = &ex.on_context_create {
                    f.call(&mut *s, (ctx as i32, root as i32))?;
                }
                Ok(())
            },
        );
        if self.trace {
            self.record(p, format!("proxy_on_context_create({ctx}, {root})"), None);
        }
        r.map(|()| ctx)
    }

    /// Calls a stream callback of plugin `p` (creating its context first). Returns the callback's
    /// return value (`None` for void callbacks or when the module does not export it).
    pub(crate) fn stream_call(&mut self, p: usize, cb: Cb) -> Result<Option<i32>, CallError> {
        let ctx = self.ensure_stream_ctx(p)?;
        let vi = self.plugins[p].vm;
        let vm = &mut self.vms[vi];
        let c = ctx as i32;
        let (w, st) = (&mut self.world, &mut self.stream);
        let name = cb.name();
        macro_rules! call3 {
            ($f:ident, $a:expr, $e:expr) => {
                vm.call_ex(w, st, Phase::Stream, ctx, name, |ex, s| match &ex.$f {
                    Some(f) => Ok(Some(f.call(&mut *s, (c, $a, $e as i32))?)),
                    None => Ok(None),
                })
            };
        }
        macro_rules! call2 {
            ($f:ident, $a:expr) => {
                vm.call_ex(w, st, Phase::Stream, ctx, name, |ex, s| match &ex.$f {
                    Some(f) => Ok(Some(f.call(&mut *s, (c, $a))?)),
                    None => Ok(None),
                })
            };
        }
        macro_rules! call2v {
            ($f:ident, $a:expr) => {
                vm.call_ex(w, st, Phase::Stream, ctx, name, |ex, s| {
                    if let Some(f) = &ex.$f {
                        f.call(&mut *s, (c, $a))?;
                    }
                    Ok(None)
                })
            };
        }
        macro_rules! call1 {
            ($f:ident) => {
                vm.call_ex(w, st, Phase::Stream, ctx, name, |ex, s| match &ex.$f {
                    Some(f) => Ok(Some(f.call(&mut *s, c)?)),
                    None => Ok(None),
                })
            };
        }
        macro_rules! call1v {
            ($f:ident) => {
                vm.call_ex(w, st, Phase::Stream, ctx, name, |ex, s| {
                    if let Some(f) = &ex.$f {
                        f.call(&mut *s, c)?;
                    }
                    Ok(None)
                })
            };
        }
        let r = match cb {
            Cb::RequestHeaders(n, e) => call3!(on_request_headers, n, e),
            Cb::RequestBody(n, e) => call3!(on_request_body, n, e),
            Cb::RequestTrailers(n) => call2!(on_request_trailers, n),
            Cb::ResponseHeaders(n, e) => call3!(on_response_headers, n, e),
            Cb::ResponseBody(n, e) => call3!(on_response_body, n, e),
            Cb::ResponseTrailers(n) => call2!(on_response_trailers, n),
            Cb::Log => call1v!(on_log),
            Cb::Done => call1!(on_done),
            Cb::Delete => call1v!(on_delete),
            Cb::NewConnection => call1!(on_new_connection),
            Cb::DownstreamData(n, e) => call3!(on_downstream_data, n, e),
            Cb::UpstreamData(n, e) => call3!(on_upstream_data, n, e),
            Cb::DownstreamClose(t) => call2v!(on_downstream_connection_close, t),
            Cb::UpstreamClose(t) => call2v!(on_upstream_connection_close, t),
        };
        if self.trace {
            let call = format!("{}{}", cb.name(), cb.args(ctx));
            self.record(p, call, r.as_ref().ok().copied().flatten());
        }
        if cb == Cb::Delete {
            self.vms[vi].store.data_mut().contexts.remove(&ctx);
            self.plugins[p].stream_ctx = 0;
        }
        if r.is_ok() {
            self.follow_ups(vi);
        }
        r
    }

    /// Delivers http-call responses issued by VM `vi` and queue notifications.
    #[inline]
    pub(crate) fn follow_ups(&mut self, vi: usize) {
        // Almost every callback leaves nothing to deliver: the look is inlined at each caller,
        // the delivery loop is not.
        if self.vms[vi].store.data().http_calls.is_empty() && self.world().shared.ready.is_empty() {
            return;
        }
        self.deliver_follow_ups(vi);
    }

    #[inline(never)]
    fn deliver_follow_ups(&mut self, vi: usize) {
        for _ in 0..MAX_FOLLOW_UPS {
            // Almost every callback leaves nothing to deliver: look before taking (and dropping)
            // the two vectors.
            if self.vms[vi].store.data().http_calls.is_empty()
                && self.world().shared.ready.is_empty()
            {
                return;
            }
            let calls = std::mem::take(&mut self.vms[vi].store.data_mut().http_calls);
            let ready = std::mem::take(&mut self.world_mut().shared.ready);
            if calls.is_empty() && ready.is_empty() {
                return;
            }
            for call in calls {
                let vm = &mut self.vms[vi];
                let f = vm.ex.on_http_call_response.clone();
                let (resp, status) = match call.script {
                    HttpCallScript::Respond(r) => (Some(r), (0u32, String::new())),
                    HttpCallScript::Fail => (None, (11u32, "reset".to_string())),
                };
                let (nh, nb, nt) = resp
                    .as_ref()
                    .map(|r| {
                        (
                            r.headers.len() as i32,
                            r.body.len() as i32,
                            r.trailers.len() as i32,
                        )
                    })
                    .unwrap_or((0, 0, 0));
                let root = call.root;
                let token = call.token as i32;
                let r = vm.call(
                    &mut self.world,
                    &mut self.stream,
                    Phase::HttpCallResponse,
                    root,
                    "proxy_on_http_call_response",
                    |s| {
                        s.data_mut().http_call_response = resp;
                        s.data_mut().last_status = status;
                        let r = match f {
                            Some(f) => f.call(&mut *s, (root as i32, token, nh, nb, nt)),
                            None => Ok(()),
                        };
                        s.data_mut().http_call_response = None;
                        r
                    },
                );
                self.record_root(
                    vi,
                    root,
                    format!("proxy_on_http_call_response({root}, {token}, {nh}, {nb}, {nt})"),
                    None,
                );
                if let Err(CallError::Trap(t)) = r {
                    self.traps.push(*t);
                }
            }
            for id in ready {
                let Some(q) = self
                    .world()
                    .shared
                    .queues
                    .get((id as usize).wrapping_sub(1))
                else {
                    continue;
                };
                let (qvm, root) = q.owner;
                let Some(vm) = self.vms.get_mut(qvm) else {
                    continue;
                };
                let f = vm.ex.on_queue_ready.clone();
                let r = vm.call(
                    &mut self.world,
                    &mut self.stream,
                    Phase::QueueReady,
                    root,
                    "proxy_on_queue_ready",
                    |s| {
                        if let Some(f) = f {
                            f.call(&mut *s, (root as i32, id as i32))?;
                        }
                        Ok(())
                    },
                );
                self.record_root(
                    qvm,
                    root,
                    format!("proxy_on_queue_ready({root}, {id})"),
                    None,
                );
                if let Err(CallError::Trap(t)) = r {
                    self.traps.push(*t);
                }
            }
        }
    }

    /// Advances the virtual clock to `ns`, firing every `proxy_on_tick` due on the way in time
    /// order (ties: VM then root order). Envoy re-arms the timer after each tick.
    #[inline]
    pub fn advance_to(&mut self, ns: i64) {
        // Inlined look first: a stream moves the clock twice, and with no VM ticking (most
        // replays) nothing can be due, so the clock just moves. The same as the loop below
        // finding nothing, without its call.
        let ticking = self
            .vms
            .iter()
            .skip(self.live_vms_from)
            .any(|vm| vm.poisoned.is_none() && vm.store.data().ticking);
        if self.clock_started && !ticking {
            let w = self.world_mut();
            w.now_ns = w.now_ns.max(ns);
            return;
        }
        self.advance_ticks(ns);
    }

    #[inline(never)]
    fn advance_ticks(&mut self, ns: i64) {
        if !self.clock_started {
            self.set_clock(ns);
        }
        loop {
            let mut best: Option<(i64, usize, u32)> = None;
            // Retired VMs (a reload with new VMs) have no roots left; skip them outright.
            for (vi, vm) in self.vms.iter().enumerate().skip(self.live_vms_from) {
                // A VM none of whose roots ever set a period has no tick due.
                if vm.poisoned.is_some() || !vm.store.data().ticking {
                    continue;
                }
                for (root, r) in &vm.store.data().roots {
                    if r.tick_period_ms > 0 && r.next_tick_ns <= ns {
                        let cand = (r.next_tick_ns, vi, *root);
                        if best.map(|b| cand < b).unwrap_or(true) {
                            best = Some(cand);
                        }
                    }
                }
            }
            let Some((when, vi, root)) = best else { break };
            let w = self.world_mut();
            w.now_ns = w.now_ns.max(when);
            let vm = &mut self.vms[vi];
            if let Some(r) = vm.store.data_mut().roots.get_mut(&root) {
                r.next_tick_ns = when.saturating_add(r.tick_period_ms as i64 * 1_000_000);
            }
            let f = vm.ex.on_tick.clone();
            let r = vm.call(
                &mut self.world,
                &mut self.stream,
                Phase::Tick,
                root,
                "proxy_on_tick",
                |s| {
                    if let Some(f) = f {
                        f.call(&mut *s, root as i32)?;
                    }
                    Ok(())
                },
            );
            self.record_root(vi, root, format!("proxy_on_tick({root})"), None);
            match r {
                Ok(()) => self.follow_ups(vi),
                Err(CallError::Trap(t)) => self.traps.push(*t),
                Err(CallError::Poisoned(_)) => {}
            }
        }
        let w = self.world_mut();
        w.now_ns = w.now_ns.max(ns);
    }

    /// Failure policy after a callback failed: fail open skips the plugin for the rest of the
    /// stream; fail closed fails the stream (returns true).
    pub(crate) fn failed(&mut self, p: usize, e: CallError) -> bool {
        if let CallError::Trap(t) = e {
            self.traps.push(*t);
        }
        self.plugins[p].skip = true;
        !self.plugins[p].fail_open
    }

    /// Takes the traps recorded since the last stream or call (e.g. by ticks during a reload).
    pub fn take_traps(&mut self) -> Vec<TrapReport> {
        std::mem::take(&mut self.traps)
    }
}
