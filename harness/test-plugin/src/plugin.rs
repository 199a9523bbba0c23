#![allow(clashing_extern_declarations)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, PeerType};

// Raw imports for probing exact statuses (the SDK would panic on some of them).
extern "C" {
    fn proxy_get_header_map_value(
        ty: u32,
        kp: *const u8,
        kl: usize,
        rp: *mut *mut u8,
        rl: *mut usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        ty: u32,
        start: usize,
        max: usize,
        rp: *mut *mut u8,
        rl: *mut usize,
    ) -> u32;
    fn proxy_get_property(pp: *const u8, pl: usize, rp: *mut *mut u8, rl: *mut usize) -> u32;
    fn proxy_set_property(pp: *const u8, pl: usize, vp: *const u8, vl: usize) -> u32;
    fn proxy_call_foreign_function(
        np: *const u8,
        nl: usize,
        ap: *const u8,
        al: usize,
        rp: *mut *mut u8,
        rl: *mut usize,
    ) -> u32;
    fn proxy_set_effective_context(id: u32) -> u32;
    fn proxy_increment_metric(id: u32, delta: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_get_metric(id: u32, ret: *mut u64) -> u32;
    fn proxy_log(level: u32, mp: *const u8, ml: usize) -> u32;
}

#[derive(Default, Clone)]
struct Config {
    tcp: bool,
    pause: Vec<String>,
    reply: Option<u32>,
    trap: Vec<String>,
    spin: Vec<String>,
    tick_ms: u64,
    set: Vec<(String, String)>,
    read: Vec<String>,
    props: bool,
    fail_configure: bool,
    metrics: bool,
    statuses: bool,
    http_call: Option<String>,
    shared: bool,
    foreign: Option<String>,
    log_headers: bool,
    body: bool,
}

fn parse(cfg: &str) -> Config {
    let mut c = Config::default();
    for item in cfg.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        match k {
            "type" => c.tcp = v == "tcp",
            "pause" => c.pause.push(v.to_string()),
            "reply" => c.reply = v.parse().ok(),
            "trap" => c.trap.push(v.to_string()),
            "loop" => c.spin.push(v.to_string()),
            "tick" => c.tick_ms = v.parse().unwrap_or(0),
            "set" => {
                if let Some((n, val)) = v.split_once(':') {
                    c.set.push((n.to_string(), val.to_string()));
                }
            }
            "read" => c.read.push(v.to_string()),
            "props" => c.props = true,
            "fail_configure" => c.fail_configure = true,
            "metrics" => c.metrics = true,
            "statuses" => c.statuses = true,
            "http_call" => c.http_call = Some(v.to_string()),
            "shared" => c.shared = true,
            "foreign" => c.foreign = Some(v.to_string()),
            "log_headers" => c.log_headers = true,
            "body" => c.body = true,
            _ => {}
        }
    }
    c
}

fn info(msg: String) {
    let _ = hostcalls::log(LogLevel::Info, &msg);
}

fn status(name: &str, s: u32) {
    info(format!("status {name} {s}"));
}

/// Traps or spins when the config names this callback.
fn hooks(cfg: &Config, cb: &str) {
    if cfg.trap.iter().any(|t| t == cb) {
        panic!("trap requested in {cb}");
    }
    if cfg.spin.iter().any(|t| t == cb) {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

fn raw_property(path: &[&str]) -> (u32, Option<Vec<u8>>) {
    let joined = path.join("\0");
    let mut p: *mut u8 = std::ptr::null_mut();
    let mut l: usize = 0;
    let s = unsafe { proxy_get_property(joined.as_ptr(), joined.len(), &mut p, &mut l) };
    if s != 0 || p.is_null() {
        return (s, None);
    }
    (s, Some(unsafe { Vec::from_raw_parts(p, l, l) }))
}

fn pairs(b: &[u8]) -> Vec<(String, String)> {
    let u32at = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let Some(n) = u32at(0) else { return Vec::new() };
    let mut sizes = Vec::new();
    for i in 0..n {
        let (Some(k), Some(v)) = (u32at(4 + 8 * i), u32at(8 + 8 * i)) else {
            return Vec::new();
        };
        sizes.push((k, v));
    }
    let mut off = 4 + 8 * n;
    let mut out = Vec::new();
    for (k, v) in sizes {
        let key = b
            .get(off..off + k)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        off += k + 1;
        let val = b
            .get(off..off + v)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        off += v + 1;
        out.push((key, val));
    }
    out
}

fn i64_of(b: &[u8]) -> Option<i64> {
    b.try_into().ok().map(i64::from_le_bytes)
}

/// Reads a set of properties through the SDK and logs the decoded values.
fn log_props(ctx: &dyn Context) {
    let str_props: &[&[&str]] = &[
        &["request", "path"],
        &["request", "method"],
        &["request", "protocol"],
        &["response", "code_details"],
        &["source", "address"],
        &["destination", "address"],
        &["node", "id"],
        &["node", "metadata", "NAME"],
        &["cluster_name"],
        &["route_name"],
        &[
            "cluster_metadata",
            "filter_metadata",
            "istio",
            "services",
            "0",
            "name",
        ],
        &[
            "cluster_metadata",
            "filter_metadata",
            "istio",
            "services",
            "0",
            "host",
        ],
        &[
            "upstream_host_metadata",
            "filter_metadata",
            "istio",
            "workload",
        ],
        &["plugin_name"],
        &["plugin_root_id"],
        &["plugin_vm_id"],
        &["connection", "uri_san_peer_certificate"],
        &["upstream", "address"],
    ];
    for p in str_props {
        let v = ctx
            .get_property(p.to_vec())
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        info(format!("prop {} = {:?}", p.join("."), v));
    }
    let int_props: &[&[&str]] = &[
        &["request", "time"],
        &["request", "duration"],
        &["request", "size"],
        &["request", "total_size"],
        &["response", "code"],
        &["response", "size"],
        &["response", "total_size"],
        &["response", "flags"],
        &["source", "port"],
        &["destination", "port"],
        &["listener_direction"],
        &["connection_id"],
        &["connection", "id"],
        &["upstream", "port"],
    ];
    for p in int_props {
        let v = ctx.get_property(p.to_vec()).and_then(|b| i64_of(&b));
        info(format!("prop {} = {:?}", p.join("."), v));
    }
    let mtls = ctx
        .get_property(vec!["connection", "mtls"])
        .map(|b| b == [1]);
    info(format!("prop connection.mtls = {mtls:?}"));
    let port = ctx
        .get_property(vec!["node", "metadata", "PORT"])
        .and_then(|b| b.try_into().ok().map(f64::from_le_bytes));
    info(format!("prop node.metadata.PORT = {port:?}"));
    let labels = ctx
        .get_property(vec!["node", "metadata", "LABELS"])
        .map(|b| pairs(&b));
    info(format!("prop node.metadata.LABELS = {labels:?}"));
    let hdrs = ctx
        .get_property(vec!["request", "headers"])
        .map(|b| pairs(&b));
    info(format!("prop request.headers = {hdrs:?}"));
    let ua = ctx
        .get_property(vec!["request", "headers", "user-agent"])
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    info(format!("prop request.headers.user-agent = {ua:?}"));
    let (s, _) = raw_property(&["node", "metadata", "NULLY"]);
    status("get_property(node.metadata.NULLY)", s);
}

struct Root {
    id: u32,
    cfg: Rc<Config>,
    queue: Rc<RefCell<Option<u32>>>,
    metric: Rc<RefCell<Vec<u32>>>,
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
        Box::new(Root { id, cfg: Rc::new(Config::default()), queue: Rc::default(), metric: Rc::default() })
    });
}}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, nh: usize, body: usize, nt: usize) {
        info(format!(
            "cb root_http_call_response {token} {nh} {body} {nt}"
        ));
    }
    fn on_done(&mut self) -> bool {
        info(format!("cb root_on_done {}", self.id));
        true
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, size: usize) -> bool {
        let cfg = self
            .get_vm_configuration()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        info(format!("cb on_vm_start {} {size} {cfg:?}", self.id));
        true
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let raw = self
            .get_plugin_configuration()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        info(format!("cb on_configure {} {size} {raw:?}", self.id));
        let cfg = parse(&raw);
        if cfg.tick_ms > 0 {
            self.set_tick_period(Duration::from_millis(cfg.tick_ms));
        }
        if cfg.statuses {
            let (p, v) = ("k", "v");
            let s = unsafe { proxy_set_property(p.as_ptr(), p.len(), v.as_ptr(), v.len()) };
            status("set_property_on_root", s);
            let (s, v) = raw_property(&["node", "id"]);
            status("get_property_on_root(node.id)", s);
            info(format!(
                "root node.id {:?}",
                v.map(|b| String::from_utf8_lossy(&b).into_owned())
            ));
            let (s, _) = raw_property(&["request", "path"]);
            status("get_property_on_root(request.path)", s);
        }
        if cfg.metrics {
            let mut ids = Vec::new();
            for (t, n) in [
                (MetricType::Counter, "tp_requests"),
                (MetricType::Gauge, "tp_gauge"),
                (MetricType::Histogram, "tp_hist"),
            ] {
                match hostcalls::define_metric(t, n) {
                    Ok(id) => {
                        info(format!("metric {n} id {id}"));
                        ids.push(id);
                    }
                    Err(e) => info(format!("metric {n} error {e:?}")),
                }
            }
            *self.metric.borrow_mut() = ids;
        }
        if cfg.shared {
            let r = self.set_shared_data("k", Some(b"v1"), None);
            info(format!("shared set {r:?}"));
            let (v, cas) = self.get_shared_data("k");
            info(format!(
                "shared get {:?} cas {:?}",
                v.map(|b| String::from_utf8_lossy(&b).into_owned()),
                cas
            ));
            let r =
                self.set_shared_data("k", Some(b"v2"), Some(cas.unwrap_or(0).wrapping_add(100)));
            info(format!("shared stale cas {r:?}"));
            let (v, _) = self.get_shared_data("missing");
            info(format!("shared missing {v:?}"));
            let q = self.register_shared_queue("q");
            info(format!("queue registered {q}"));
            *self.queue.borrow_mut() = Some(q);
        }
        self.cfg = Rc::new(cfg);
        if self.cfg.fail_configure {
            info("configure failing on purpose".into());
            return false;
        }
        true
    }

    fn on_tick(&mut self) {
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        info(format!("cb on_tick {} {now}", self.id));
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        let v = self.dequeue_shared_queue(queue_id);
        info(format!(
            "cb on_queue_ready {queue_id} {:?}",
            v.map(|o| o.map(|b| String::from_utf8_lossy(&b).into_owned()))
        ));
        let again = self.dequeue_shared_queue(queue_id);
        info(format!("queue again {again:?}"));
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(if self.cfg.tcp {
            ContextType::StreamContext
        } else {
            ContextType::HttpContext
        })
    }

    fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
        info(format!("cb create_http_context {id} {}", self.id));
        Some(Box::new(Stream {
            id,
            cfg: self.cfg.clone(),
            queue: self.queue.clone(),
            metric: self.metric.clone(),
        }))
    }

    fn create_stream_context(&self, id: u32) -> Option<Box<dyn StreamContext>> {
        info(format!("cb create_stream_context {id} {}", self.id));
        Some(Box::new(Stream {
            id,
            cfg: self.cfg.clone(),
            queue: self.queue.clone(),
            metric: self.metric.clone(),
        }))
    }
}

struct Stream {
    id: u32,
    cfg: Rc<Config>,
    queue: Rc<RefCell<Option<u32>>>,
    metric: Rc<RefCell<Vec<u32>>>,
}

impl Stream {
    fn action(&self, cb: &str) -> Action {
        hooks(&self.cfg, cb);
        if self.cfg.pause.iter().any(|p| p == cb) {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn probe_statuses(&self) {
        let mut p: *mut u8 = std::ptr::null_mut();
        let mut l: usize = 0;
        let key = "x";
        let s = unsafe { proxy_get_header_map_value(2, key.as_ptr(), key.len(), &mut p, &mut l) };
        status("get_header_map_value(response_headers)", s);
        let key = "missing";
        let s = unsafe { proxy_get_header_map_value(0, key.as_ptr(), key.len(), &mut p, &mut l) };
        status("get_header_map_value(missing)", s);
        let s = unsafe { proxy_get_buffer_bytes(0, 0, 10, &mut p, &mut l) };
        status("get_buffer_bytes(request_body)", s);
        let s = unsafe { proxy_get_buffer_bytes(9, 0, 10, &mut p, &mut l) };
        status("get_buffer_bytes(9)", s);
        let (s, _) = raw_property(&["nope"]);
        status("get_property(nope)", s);
        let (s, _) = raw_property(&["response", "code"]);
        status("get_property(response.code)", s);
        let name = "nope";
        let s = unsafe {
            proxy_call_foreign_function(name.as_ptr(), name.len(), name.as_ptr(), 0, &mut p, &mut l)
        };
        status("call_foreign_function(nope)", s);
        let s = unsafe { proxy_set_effective_context(9999) };
        status("set_effective_context(9999)", s);
        let s = unsafe { proxy_set_effective_context(self.id) };
        status("set_effective_context(self)", s);
        let s = unsafe { proxy_log(9, name.as_ptr(), name.len()) };
        status("log(9)", s);
    }

    fn probe_metrics(&self) {
        let ids = self.metric.borrow().clone();
        let [c, g, h] = ids[..] else { return };
        let r = hostcalls::increment_metric(c, 1);
        info(format!("increment counter {r:?}"));
        let s = unsafe { proxy_increment_metric(c, 0) };
        status("increment_metric(counter,0)", s);
        let s = unsafe { proxy_increment_metric(c, -1) };
        status("increment_metric(counter,-1)", s);
        let s = unsafe { proxy_record_metric(c, 5) };
        status("record_metric(counter,5)", s);
        let s = unsafe { proxy_increment_metric(g, 7) };
        status("increment_metric(gauge,7)", s);
        let s = unsafe { proxy_increment_metric(g, -2) };
        status("increment_metric(gauge,-2)", s);
        let s = unsafe { proxy_increment_metric(h, 1) };
        status("increment_metric(histogram,1)", s);
        let s = unsafe { proxy_record_metric(h, 42) };
        status("record_metric(histogram,42)", s);
        let mut v = 0u64;
        let s = unsafe { proxy_get_metric(h, &mut v) };
        status("get_metric(histogram)", s);
        let s = unsafe { proxy_get_metric(c, &mut v) };
        status("get_metric(counter)", s);
        info(format!("counter value {v}"));
        let s = unsafe { proxy_increment_metric(999, 1) };
        status("increment_metric(999)", s);
    }
}

impl Context for Stream {
    fn on_http_call_response(&mut self, token: u32, nh: usize, body: usize, nt: usize) {
        let hdrs = self.get_http_call_response_headers();
        let b = self
            .get_http_call_response_body(0, body)
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let (code, msg) = self.get_grpc_status();
        info(format!("cb http_call_response {} token={token} nh={nh} body={body} nt={nt} headers={hdrs:?} body={b:?} status={code} {msg:?}", self.id));
        self.resume_http_request();
    }

    fn on_done(&mut self) -> bool {
        info(format!("cb on_done {}", self.id));
        true
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, n: usize, eos: bool) -> Action {
        info(format!("cb request_headers {} {n} {eos}", self.id));
        if self.cfg.log_headers {
            info(format!(
                "request headers {:?}",
                self.get_http_request_headers()
            ));
        }
        for (k, v) in &self.cfg.set {
            self.set_property(vec![k.as_str()], Some(v.as_bytes()));
            info(format!("set {k}={v}"));
        }
        for k in &self.cfg.read {
            let v = self
                .get_property(vec![k.as_str()])
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            info(format!("read at request_headers {k}={v:?}"));
        }
        if self.cfg.statuses {
            self.probe_statuses();
            self.set_http_request_header("x-added", Some("1"));
            self.add_http_request_header("x-dup", "a");
            self.add_http_request_header("x-dup", "b");
            info(format!(
                "x-dup first = {:?}",
                self.get_http_request_header("X-Dup")
            ));
        }
        if let Some(q) = *self.queue.borrow() {
            let r = self.enqueue_shared_queue(q, Some(b"item"));
            info(format!("enqueue {r:?}"));
        }
        if let Some(name) = &self.cfg.foreign {
            let r = self.call_foreign_function(name, Some(b"args"));
            info(format!(
                "foreign {name} {:?}",
                r.map(|o| o.map(|b| String::from_utf8_lossy(&b).into_owned()))
            ));
        }
        if let Some(cluster) = &self.cfg.http_call {
            let r = self.dispatch_http_call(
                cluster,
                vec![
                    (":method", "GET"),
                    (":path", "/check"),
                    (":authority", "authz"),
                ],
                None,
                vec![],
                Duration::from_secs(1),
            );
            info(format!("dispatch_http_call {r:?}"));
            if r.is_ok() {
                hooks(&self.cfg, "req_headers");
                return Action::Pause;
            }
        }
        if let Some(code) = self.cfg.reply {
            self.send_http_response(code, vec![("x-reply", "1")], Some(b"denied"));
            return Action::Pause;
        }
        self.action("req_headers")
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        info(format!("cb request_body {} {size} {eos}", self.id));
        if self.cfg.body {
            let b = self
                .get_http_request_body(0, size)
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            info(format!("request body {b:?}"));
        }
        self.action("req_body")
    }

    fn on_http_request_trailers(&mut self, n: usize) -> Action {
        info(format!("cb request_trailers {} {n}", self.id));
        self.action("req_trailers")
    }

    fn on_http_response_headers(&mut self, n: usize, eos: bool) -> Action {
        info(format!("cb response_headers {} {n} {eos}", self.id));
        if self.cfg.log_headers {
            info(format!(
                "response headers {:?}",
                self.get_http_response_headers()
            ));
        }
        for k in &self.cfg.read {
            let v = self
                .get_property(vec![k.as_str()])
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            info(format!("read at response_headers {k}={v:?}"));
        }
        self.action("resp_headers")
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        info(format!("cb response_body {} {size} {eos}", self.id));
        if self.cfg.body {
            let b = self
                .get_http_response_body(0, size)
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            info(format!("response body {b:?}"));
        }
        self.action("resp_body")
    }

    fn on_http_response_trailers(&mut self, n: usize) -> Action {
        info(format!("cb response_trailers {} {n}", self.id));
        self.action("resp_trailers")
    }

    fn on_log(&mut self) {
        info(format!("cb on_log {}", self.id));
        hooks(&self.cfg, "log");
        for k in &self.cfg.read {
            let v = self
                .get_property(vec![k.as_str()])
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            info(format!("read at log {k}={v:?}"));
        }
        if self.cfg.props {
            log_props(self);
        }
        if self.cfg.metrics {
            self.probe_metrics();
        }
    }
}

impl StreamContext for Stream {
    fn on_new_connection(&mut self) -> Action {
        info(format!("cb new_connection {}", self.id));
        self.action("new_connection")
    }

    fn on_downstream_data(&mut self, size: usize, eos: bool) -> Action {
        info(format!("cb downstream_data {} {size} {eos}", self.id));
        for k in &self.cfg.read {
            let v = self
                .get_property(vec![k.as_str()])
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            info(format!("read at downstream_data {k}={v:?}"));
        }
        self.action("downstream_data")
    }

    fn on_downstream_close(&mut self, peer: PeerType) {
        info(format!("cb downstream_close {} {}", self.id, peer as u32));
    }

    fn on_upstream_data(&mut self, size: usize, eos: bool) -> Action {
        info(format!("cb upstream_data {} {size} {eos}", self.id));
        self.action("upstream_data")
    }

    fn on_upstream_close(&mut self, peer: PeerType) {
        info(format!("cb upstream_close {} {}", self.id, peer as u32));
    }

    fn on_log(&mut self) {
        info(format!("cb on_log {}", self.id));
        for k in &self.cfg.read {
            let v = self
                .get_property(vec![k.as_str()])
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            info(format!("read at log {k}={v:?}"));
        }
    }
}
