//! The HTTP stream driver: Envoy's decoder path in chain order, encoder path in reverse, then the
//! access-log phase (`proxy_on_log` in chain order) and `proxy_on_done` / `proxy_on_delete`
//! (abi-host §1.4). Pause is honoured (a paused stream that is never resumed stalls), actions
//! requested during a callback are applied after it returns, and a local reply is sent through
//! the encoder path.

use std::sync::Arc;

use super::Cb;
use crate::abi::{Action, LogLevel};
use crate::host_state::{
    Deferred, Facts, LocalReply, MAP_REQ_HEADERS, MAP_REQ_TRAILERS, MAP_RESP_HEADERS,
    MAP_RESP_TRAILERS,
};
use crate::metadata_exchange as mx;
use crate::proxy::{context_of, ChainEntry, HttpOutcome, Proxy};
use crate::stream::{Direction, HttpExchange, HttpPlan};

/// The filter state key `envoy.filters.http.grpc_stats` writes with `emit_filter_state`.
const GRPC_STATS_KEY: &[u8] = b"envoy.filters.http.grpc_stats";

/// What the chain did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Paused and not resumed.
    Stalled,
    LocalReply,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    ReqHeaders(bool),
    ReqBody(bool),
    ReqTrailers,
    RespHeaders(bool),
    RespBody(bool),
    RespTrailers,
}

/// The plan of a plain exchange.
static PLAIN: HttpPlan = HttpPlan {
    grpc_initial: (0, 0),
    grpc_timeline: Vec::new(),
    stop_after_ns: None,
};

impl Proxy {
    /// Runs one HTTP exchange through the chain of its direction.
    pub fn run_http(&mut self, x: &HttpExchange) -> HttpOutcome {
        self.run_http_planned(x, &PLAIN)
    }

    /// Runs one HTTP exchange with timing inside it:
    /// * timed gRPC batches: the grpc_stats filter state starts at `plan.grpc_initial` and takes
    ///   each running total at its instant (ticks due before that instant see the previous
    ///   totals; a tick at the same instant too), after the request and response headers;
    /// * `stop_after_ns`: the stream stays open. Request and response headers pass with
    ///   `end_stream` false, bodies and trailers (which end a stream) are never delivered, the
    ///   clock runs to `start + stop_after_ns` firing ticks, and there is no log phase. The proxy
    ///   then refuses further streams ([`Proxy::open_stream`]): a scrape is all that is left.
    pub fn run_http_planned(&mut self, x: &HttpExchange, plan: &HttpPlan) -> HttpOutcome {
        if self.refuse_after_stop() {
            return HttpOutcome::default();
        }
        self.advance_to(x.start_ns);
        self.grpc_at_headers = if plan.grpc_timeline.is_empty() {
            x.grpc_messages
        } else {
            Some(plan.grpc_initial)
        };
        let open = plan.stop_after_ns.is_some();
        let plan_chain: Arc<HttpChain> = self
            .http_chains
            .get(&context_of(x.direction))
            .cloned()
            .unwrap_or_default();
        let chain = &plan_chain.entries[..];
        let active = &plan_chain.acts[..];
        self.records.clear();
        self.traps.clear();
        for p in plugins_of(active) {
            self.plugins[p].stream_ctx = 0;
            // Envoy leaves a fail-open plugin whose VM failed out of new streams.
            self.plugins[p].skip =
                self.vms[self.plugins[p].vm].poisoned.is_some() && self.plugins[p].fail_open;
        }
        // The previous stream's header maps are refilled in place (see `refill`).
        let mut spare_resp_headers;
        {
            let cache = &mut self.mx_cache;
            let s = self.stream.as_deref_mut().expect("stream present");
            let mut req_headers = std::mem::take(&mut s.maps[MAP_REQ_HEADERS]);
            spare_resp_headers = std::mem::take(&mut s.maps[MAP_RESP_HEADERS]);
            s.reset();
            s.facts = Facts::Http(x as *const HttpExchange);
            refill(&mut req_headers, &x.request.headers, cache);
            s.maps[MAP_REQ_HEADERS] = req_headers;
            s.maps[MAP_REQ_TRAILERS].extend_from_slice(&x.request.trailers);
            if x.direction == Direction::Inbound {
                if let Some(peer) = &x.peer {
                    mx::inject_peer(&mut s.maps[MAP_REQ_HEADERS], peer, cache);
                }
            }
        }
        let mut out = HttpOutcome::default();
        let mut mx_received = (false, false);
        // An open stream has sent its headers only.
        let has_body = !open && !x.request.body.is_empty();
        let has_trailers = !open && !x.request.trailers.is_empty();

        // Decoder path.
        let mut flow = self.event(
            active,
            x.direction,
            Ev::ReqHeaders(!has_body && !has_trailers),
            &mut mx_received,
        );
        if flow == Flow::Continue && has_body {
            let s = self.stream_mut();
            s.bytes_received = x.request.body.len() as u64;
            flow = self.event(
                active,
                x.direction,
                Ev::ReqBody(!has_trailers),
                &mut mx_received,
            );
        }
        if flow == Flow::Continue && has_trailers {
            flow = self.event(active, x.direction, Ev::ReqTrailers, &mut mx_received);
        }
        self.stream_mut().bytes_received = if open { 0 } else { x.request.body.len() as u64 };
        if flow == Flow::Continue {
            self.stream_mut().routed = true;
            if self.trace {
                out.upstream_request_headers = self.stream_ref().maps[MAP_REQ_HEADERS].clone();
            }
        }
        out.stalled_request = flow == Flow::Stalled;

        // Encoder path: the upstream response, or a local reply.
        match flow {
            Flow::Continue => {
                if let Some(resp) = &x.response {
                    let cache = &mut self.mx_cache;
                    let s = self.stream.as_deref_mut().expect("stream present");
                    if s.maps[MAP_RESP_HEADERS].is_empty() {
                        refill(&mut spare_resp_headers, &resp.headers, cache);
                        s.maps[MAP_RESP_HEADERS] = std::mem::take(&mut spare_resp_headers);
                    } else {
                        s.maps[MAP_RESP_HEADERS].extend_from_slice(&resp.headers);
                    }
                    s.maps[MAP_RESP_TRAILERS].extend_from_slice(&resp.trailers);
                    if x.direction != Direction::Inbound {
                        if let Some(peer) = &x.peer {
                            mx::inject_peer(&mut s.maps[MAP_RESP_HEADERS], peer, cache);
                        }
                    }
                    s.response_started = true;
                    s.response_code = resp
                        .headers
                        .iter()
                        .find(|(k, _)| k == ":status")
                        .and_then(|(_, v)| v.parse().ok());
                    // In place: `reset` kept the buffer.
                    s.code_details.clear();
                    s.code_details.push_str(if x.code_details.is_empty() {
                        "via_upstream"
                    } else {
                        &x.code_details
                    });
                    let (rb, rt) = (
                        !open && !resp.body.is_empty(),
                        !open && !resp.trailers.is_empty(),
                    );
                    let mut f = self.event(
                        active,
                        x.direction,
                        Ev::RespHeaders(!rb && !rt),
                        &mut mx_received,
                    );
                    if f == Flow::Continue && rb {
                        self.stream_mut().bytes_sent = resp.body.len() as u64;
                        f = self.event(active, x.direction, Ev::RespBody(!rt), &mut mx_received);
                    }
                    if f == Flow::Continue && rt {
                        f = self.event(active, x.direction, Ev::RespTrailers, &mut mx_received);
                    }
                    self.stream_mut().bytes_sent = if open { 0 } else { resp.body.len() as u64 };
                    out.stalled_response = f == Flow::Stalled;
                    if f == Flow::LocalReply {
                        // A local reply while encoding replaces the response headers.
                        self.install_local_reply();
                    }
                    out.reset = f == Flow::Reset;
                } else {
                    // Reset before any response: Envoy's details (e.g. upstream_reset_before_response_started).
                    let s = self.stream_mut();
                    s.code_details = x.code_details.clone();
                    s.response_code = None;
                }
            }
            Flow::LocalReply => {
                self.install_local_reply();
                let body_len = self
                    .stream_ref()
                    .local_reply
                    .as_ref()
                    .map(|r| r.body.len())
                    .unwrap_or(0);
                let mut f = self.event(
                    active,
                    x.direction,
                    Ev::RespHeaders(body_len == 0),
                    &mut mx_received,
                );
                if f == Flow::Continue && body_len > 0 {
                    if let Some(r) = &self.stream_ref().local_reply {
                        let b = r.body.clone();
                        let s = self.stream_mut();
                        s.bytes_sent = b.len() as u64;
                        s.buffer.clear();
                        s.buffer.extend_from_slice(&b);
                    }
                    f = self.event(active, x.direction, Ev::RespBody(true), &mut mx_received);
                }
                out.stalled_response = f == Flow::Stalled;
            }
            Flow::Reset => out.reset = true,
            Flow::Stalled => {
                self.world_mut().harness_log(
                    LogLevel::Warn,
                    "HTTP stream paused in the request path and never resumed: it stalls (Envoy would time it out)".into(),
                );
            }
        }
        if self.trace {
            out.downstream_response_headers = self.stream_ref().maps[MAP_RESP_HEADERS].clone();
        }

        // The timed gRPC batches, then (open stream) the stop, or the stream's end.
        let grpc_stats_in_chain = !plan.grpc_timeline.is_empty()
            && chain.iter().any(|e| matches!(e, ChainEntry::GrpcStats));
        let end = x.start_ns.saturating_add(x.duration_ns.max(0));
        let until = plan
            .stop_after_ns
            .map_or(end, |s| x.start_ns.saturating_add(s.max(0)));
        for p in &plan.grpc_timeline {
            let at = x.start_ns.saturating_add(p.at_ns.max(0));
            if at > until {
                break;
            }
            self.advance_to(at);
            if grpc_stats_in_chain {
                let value = format!("{},{}", p.requests, p.responses);
                self.stream_mut()
                    .filter_state
                    .set(GRPC_STATS_KEY, value.as_bytes(), false);
            }
        }
        if open {
            self.advance_to(until);
            self.stop_open_stream(chain);
            let s = self.stream_mut();
            out.response_code = s.response_code;
            out.filter_state = s.filter_state.clone();
            out.traps = self.take_traps();
            if self.trace {
                out.callbacks = std::mem::take(&mut self.records);
            }
            return out;
        }

        // Access-log phase, then destroy.
        self.advance_to(end);
        {
            let s = self.stream_mut();
            s.log_phase = true;
            s.live = [false; 4];
            s.buffer_type = None;
            if s.code_details.is_empty() && !x.code_details.is_empty() {
                s.code_details = x.code_details.clone();
            }
        }
        for p in plugins_of(active) {
            if !self.plugins[p].skip {
                if let Err(err) = self.stream_call(p, Cb::Log) {
                    self.failed(p, err);
                }
            }
        }
        for p in plugins_of(active) {
            if self.plugins[p].stream_ctx != 0 && !self.plugins[p].skip {
                if let Err(err) = self.stream_call(p, Cb::Done) {
                    self.failed(p, err);
                }
            }
            if self.plugins[p].stream_ctx != 0 && !self.plugins[p].skip {
                if let Err(err) = self.stream_call(p, Cb::Delete) {
                    self.failed(p, err);
                }
            }
            // A context of a failed VM is simply forgotten.
            let (vi, ctx) = (self.plugins[p].vm, self.plugins[p].stream_ctx);
            if ctx != 0 {
                self.vms[vi].store.data_mut().contexts.remove(&ctx);
                self.plugins[p].stream_ctx = 0;
            }
        }
        let s = self.stream_mut();
        out.local_reply = s.local_reply.take();
        out.response_code = s.response_code;
        out.filter_state = std::mem::take(&mut s.filter_state);
        s.facts = Facts::None;
        out.traps = self.take_traps();
        if self.trace {
            out.callbacks = std::mem::take(&mut self.records);
        }
        out
    }

    /// Leaves the stream open for good: its contexts stay (the plugins keep it in their request
    /// queues, as Envoy's would be at a scrape), but the description it points at is released.
    fn stop_open_stream(&mut self, chain: &[ChainEntry]) {
        let contexts = chain
            .iter()
            .filter_map(|e| match e {
                ChainEntry::Wasm(p) => Some(self.plugins[*p].stream_ctx),
                _ => None,
            })
            .filter(|c| *c != 0)
            .collect();
        self.open_stream = Some(contexts);
        let s = self.stream_mut();
        s.facts = Facts::None;
        s.live = [false; 4];
        s.buffer_type = None;
    }

    /// After a stop inside an open stream nothing else may run: the open stream's contexts
    /// would read the next stream's state. Logged once per refused stream.
    pub(crate) fn refuse_after_stop(&mut self) -> bool {
        if self.open_stream.is_none() {
            return false;
        }
        self.world_mut().harness_log(
            LogLevel::Warn,
            "the replay stopped inside an open stream (stop_after_ms): no further stream runs"
                .into(),
        );
        true
    }

    pub(crate) fn stream_mut(&mut self) -> &mut crate::host_state::StreamState {
        self.stream
            .as_deref_mut()
            .expect("the stream is only moved out during a VM call")
    }

    pub(crate) fn stream_ref(&self) -> &crate::host_state::StreamState {
        self.stream
            .as_deref()
            .expect("the stream is only moved out during a VM call")
    }

    /// Turns the pending local reply into the response Envoy sends (`sendLocalReply`: `:status`,
    /// the plugin's headers, `content-length`/`content-type: text/plain` for a body).
    fn install_local_reply(&mut self) {
        let s = self.stream_mut();
        let Some(r) = s.local_reply.clone() else {
            return;
        };
        let h = &mut s.maps[MAP_RESP_HEADERS];
        h.clear();
        h.push((":status".into(), r.status.to_string()));
        h.extend(r.headers.iter().cloned());
        if !r.body.is_empty() {
            h.push(("content-length".into(), r.body.len().to_string()));
            h.push(("content-type".into(), "text/plain".into()));
        }
        if let Some(g) = r.grpc_status {
            h.push(("grpc-status".into(), g.to_string()));
        }
        s.maps[MAP_RESP_TRAILERS].clear();
        s.response_started = true;
        s.response_code = Some(r.status as i64);
        s.code_details = r.details.clone();
    }

    /// Runs one event through the chain (decoder events in order, encoder events reversed).
    fn event(
        &mut self,
        active: &[Act],
        dir: Direction,
        ev: Ev,
        mx_received: &mut (bool, bool),
    ) -> Flow {
        let reverse = matches!(ev, Ev::RespHeaders(_) | Ev::RespBody(_) | Ev::RespTrailers);
        let n = active.len();
        for k in 0..n {
            match active[if reverse { n - 1 - k } else { k }] {
                // Istio configures grpc_stats with `emit_filter_state: true`: the stats plugin
                // reads the message counts from that filter state. Untimed batches are visible from
                // the request headers on; timed ones (`HttpPlan`) are applied at their instants
                // in `run_http_planned`, as Envoy updates the counts per message.
                Act::Grpc => {
                    if let (Ev::ReqHeaders(_), Some(s)) = (&ev, self.stream.as_deref_mut()) {
                        if let Some((q, r)) = self.grpc_at_headers {
                            let value = format!("{q},{r}");
                            s.filter_state.set(GRPC_STATS_KEY, value.as_bytes(), false);
                        }
                    }
                }
                Act::Mx => {
                    let (local, cache) = (&self.local_mx, &mut self.mx_cache);
                    let Some(s) = self.stream.as_deref_mut() else {
                        continue;
                    };
                    match ev {
                        Ev::ReqHeaders(_) => {
                            *mx_received = mx::on_request(
                                dir,
                                local,
                                &mut s.maps[MAP_REQ_HEADERS],
                                &mut s.filter_state,
                                cache,
                            )
                        }
                        Ev::RespHeaders(_) => mx::on_response(
                            dir,
                            local,
                            *mx_received,
                            &mut s.maps[MAP_RESP_HEADERS],
                            &mut s.filter_state,
                            cache,
                        ),
                        _ => {}
                    }
                }
                Act::Wasm(p) => {
                    if self.plugins[p].skip {
                        continue;
                    }
                    let (cb, map, buffer_type) = {
                        let s = self.stream_ref();
                        let len = |m: usize| s.maps[m].len() as i32;
                        match ev {
                            Ev::ReqHeaders(e) => (
                                Cb::RequestHeaders(len(MAP_REQ_HEADERS), e),
                                Some(MAP_REQ_HEADERS),
                                None,
                            ),
                            Ev::ReqTrailers => (
                                Cb::RequestTrailers(len(MAP_REQ_TRAILERS)),
                                Some(MAP_REQ_TRAILERS),
                                None,
                            ),
                            Ev::RespHeaders(e) => (
                                Cb::ResponseHeaders(len(MAP_RESP_HEADERS), e),
                                Some(MAP_RESP_HEADERS),
                                None,
                            ),
                            Ev::RespTrailers => (
                                Cb::ResponseTrailers(len(MAP_RESP_TRAILERS)),
                                Some(MAP_RESP_TRAILERS),
                                None,
                            ),
                            Ev::ReqBody(e) => (Cb::RequestBody(0, e), None, Some(0)),
                            Ev::RespBody(e) => (Cb::ResponseBody(0, e), None, Some(1)),
                        }
                    };
                    let cb = match (cb, buffer_type) {
                        (Cb::RequestBody(_, e), Some(_)) | (Cb::ResponseBody(_, e), Some(_)) => {
                            let body_len = self.body_for(ev);
                            if matches!(ev, Ev::ReqBody(_)) {
                                Cb::RequestBody(body_len, e)
                            } else {
                                Cb::ResponseBody(body_len, e)
                            }
                        }
                        (cb, _) => cb,
                    };
                    {
                        let s = self.stream_mut();
                        if let Some(m) = map {
                            s.live[m] = true;
                        }
                        s.buffer_type = buffer_type;
                        s.deferred.clear();
                    }
                    let r = self.stream_call(p, cb);
                    let s = self.stream_mut();
                    s.live = [false; 4];
                    s.buffer_type = None;
                    let action = match r {
                        Ok(a) => a.unwrap_or(0),
                        Err(e) => {
                            if self.failed(p, e) {
                                self.fail_stream(p);
                                return Flow::LocalReply;
                            }
                            continue;
                        }
                    };
                    // Almost no callback defers anything: look before taking (and dropping) it.
                    if self.stream_ref().deferred.is_empty() {
                        if Action::from_i32(action) == Action::Pause {
                            return Flow::Stalled;
                        }
                        continue;
                    }
                    if let Some(flow) = self.apply_deferred(action, reverse) {
                        return flow;
                    }
                }
            }
        }
        Flow::Continue
    }

    /// Applies the actions a callback deferred (in order) after it returned `action`; `Some`
    /// when the event stops here. Out of line: almost no callback defers anything.
    #[cold]
    #[inline(never)]
    fn apply_deferred(&mut self, action: i32, reverse: bool) -> Option<Flow> {
        let deferred = std::mem::take(&mut self.stream_mut().deferred);
        let want = if reverse { 1 } else { 0 };
        let mut continued = false;
        for d in deferred {
            match d {
                Deferred::Continue(t) if t == want => continued = true,
                Deferred::Continue(_) => {}
                Deferred::Close(_) => return Some(Flow::Reset),
                Deferred::LocalReply(r) => {
                    let s = self.stream_mut();
                    if s.local_reply.is_none() {
                        s.local_reply = Some(r);
                    }
                    return Some(Flow::LocalReply);
                }
            }
        }
        if Action::from_i32(action) == Action::Pause && !continued {
            return Some(Flow::Stalled);
        }
        None
    }

    /// Loads the body of `ev` into the stream buffer; returns its size.
    fn body_for(&mut self, ev: Ev) -> i32 {
        let s = self.stream.as_deref_mut().expect("stream present");
        // The buffer is taken out while the body is borrowed from the stream, so the body is
        // copied once, into the buffer's existing allocation.
        let mut buffer = std::mem::take(&mut s.buffer);
        buffer.clear();
        if let Some(x) = s.facts.http() {
            let body: &[u8] = match ev {
                Ev::ReqBody(_) => &x.request.body,
                _ => match (&s.local_reply, &x.response) {
                    (Some(r), _) => &r.body,
                    (None, Some(resp)) => &resp.body,
                    _ => &[],
                },
            };
            buffer.extend_from_slice(body);
        } else {
            s.buffer = buffer;
            return 0;
        }
        s.buffer = buffer;
        s.buffer.len() as i32
    }

    /// Envoy `Context::failStream`: local reply 503 with details `wasm_fail_stream`.
    fn fail_stream(&mut self, p: usize) {
        let plugin = self.plugins[p].plugin_name.clone();
        let s = self.stream_mut();
        if s.local_reply.is_none() {
            s.local_reply = Some(LocalReply {
                status: 503,
                details: "wasm_fail_stream".into(),
                body: Vec::new(),
                headers: Vec::new(),
                grpc_status: None,
                plugin,
            });
        }
    }
}

/// What a chain entry does on stream events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    Grpc,
    Mx,
    Wasm(usize),
}

/// An instantiated HTTP chain and, classified once at load, the entries that act on stream
/// events in chain order: a pass-through filter other than grpc_stats does nothing, and walking
/// past the five of a default chain (matching each against grpc_stats) on every event cost
/// more than the rest of the event loop.
#[derive(Debug, Default)]
pub(crate) struct HttpChain {
    pub(crate) entries: Box<[ChainEntry]>,
    acts: Box<[Act]>,
}

impl HttpChain {
    pub(crate) fn new(entries: Vec<ChainEntry>) -> HttpChain {
        let acts = entries
            .iter()
            .filter_map(|e| match e {
                ChainEntry::GrpcStats => Some(Act::Grpc),
                ChainEntry::PassThrough(_) => None,
                ChainEntry::MetadataExchange => Some(Act::Mx),
                ChainEntry::Wasm(p) => Some(Act::Wasm(*p)),
            })
            .collect();
        HttpChain {
            entries: entries.into(),
            acts,
        }
    }
}

/// The Wasm plugins among the acting entries, in chain order.
fn plugins_of(acts: &[Act]) -> impl Iterator<Item = usize> + '_ {
    acts.iter().filter_map(|a| match a {
        Act::Wasm(p) => Some(*p),
        _ => None,
    })
}

/// Makes `dst` a copy of `src`, reusing the `String` buffers already in `dst` (a tuple's
/// `clone_from` would allocate afresh, so each name and value is copied separately);
/// surplus entries (e.g. the metadata-exchange headers added last stream) go to the cache's
/// spare buffers.
fn refill(dst: &mut Vec<(String, String)>, src: &[(String, String)], cache: &mut mx::MxCache) {
    // Popped rather than drained (no Drain guard); only the spare pool's order differs.
    while dst.len() > src.len() {
        if let Some((k, v)) = dst.pop() {
            cache.recycle(k);
            cache.recycle(v);
        }
    }
    for ((dk, dv), (sk, sv)) in dst.iter_mut().zip(src) {
        copy_into(dk, sk);
        copy_into(dv, sv);
    }
    let n = dst.len();
    dst.extend_from_slice(&src[n..]);
}

/// `dst.clone_from(src)` with one copy: `String::clone_from` copies the common prefix and
/// then appends the rest, two `memcpy` calls for the usual header.
#[inline]
fn copy_into(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}
