//! Streaming decoder for the JSON Lines traffic format (`/work/shared/spec/replay-format.md`, the
//! contract): one [`TrafficReader`] pass over any `BufRead`, one line at a time, so memory stays
//! flat whatever the file size.
//!
//! Decisions the contract leaves open (documented in `harness replay --help` too):
//! * **Unknown fields** are accepted and ignored; the first line that uses each unknown field
//!   path (e.g. `request.foo`) carries a warning. A TCP-only field on an HTTP event (or the
//!   reverse) is treated the same way.
//! * **Wrong types / bad values** (e.g. `"duration_ms":"x"`, an unknown response flag) make the
//!   line an error: `(line number, field path: reason)`; the line is skipped.
//! * `"response": null` (addition): the stream was reset, no response.
//! * `response.flags` may also be the integer bitmask (addition).
//! * `connection.id` (addition) sets `connection.id`; default: the event's line number.
//! * `peer.id` absent: `sidecar~<first INSTANCE_IPS or 0.0.0.0>~<NAME>.<NAMESPACE>~<NAMESPACE>.svc.cluster.local`.
//! * gRPC (`response.grpc_status` set): `content-type: application/grpc` is added to the request
//!   and response headers unless given, the protocol defaults to `HTTP/2`, and the response ends
//!   with a `grpc-status` trailer.
//! * `grpc_messages[].at_ms` (addition): when (ms after the stream's start) the batch has
//!   passed grpc_stats; 0 ≤ at_ms ≤ `duration_ms`, timed batches in time order. Untimed
//!   batches count from the request headers on. See [`HttpPlan`].
//! * `stop_after_ms` (addition, HTTP): stop the replay that many ms into the stream
//!   (< `duration_ms`), the stream still open; `repeat` must be 0 or 1. Later lines are skipped
//!   (`replay::run`).
//! * `{"kind":"reload","start":…,"vm":"new"|"same"}` (addition): a listener update; no
//!   `direction`. Decoded off the fast path only (a reload line fails the strict event shape).
//! * Default clusters: inbound `inbound|PORT||` with PORT from `connection.destination_address`,
//!   else the authority's port, else 80 (443 for https); outbound and gateway HTTP
//!   `outbound|PORT||HOST` from the authority as written (PORT default as above); TCP outbound
//!   `outbound|PORT||<upstream.service.host>` when both are known, else `PassthroughCluster`.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::io::BufRead;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::flags::parse_flags;
use super::time::{parse_rfc3339, DEFAULT_EPOCH_NS};
use crate::stream::{
    ConnectionInfo, Direction, GrpcProgress, HttpExchange, HttpMessage, HttpPlan, MxOutcome, Peer,
    Reload, ServiceRef, TcpConnection, UpstreamInfo,
};

const NS_PER_MS: f64 = 1_000_000.0;

/// One decoded traffic line.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Boxed: the box is recycled with the exchange (no allocation per line), and an event
    /// moves as a pointer instead of a few hundred bytes.
    Http(Box<HttpExchange>),
    Tcp(Box<TcpConnection>),
    /// `{"kind":"reload"}` (addition): a listener update re-delivering the configuration.
    Reload(Reload),
}

/// An event with where it came from and how often to replay it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    /// 1-based line number in its file.
    pub line: usize,
    pub repeat: u32,
    pub event: Event,
    /// Timing inside an HTTP stream (timed gRPC batches, `stop_after_ms`); default otherwise.
    pub plan: HttpPlan,
    /// Warnings about this line (unknown fields, first use per file only).
    pub warnings: Vec<String>,
}

/// A line that is not a valid event: skipped, reported, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Iterates the events of one traffic stream. Blank lines are skipped silently; every other
/// line yields an event or a [`LineError`].
pub struct TrafficReader<R> {
    input: R,
    buf: Vec<u8>,
    decoder: Decoder,
    /// An I/O error ends the iteration after being reported once.
    failed: bool,
}

impl<R: BufRead> TrafficReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            buf: Vec::with_capacity(4096),
            decoder: Decoder::default(),
            failed: false,
        }
    }

    /// Lines read so far (including blank and bad ones).
    pub fn lines_read(&self) -> usize {
        self.decoder.st.line
    }

    /// Hands a replayed event back: the next HTTP line is decoded into its buffers.
    pub fn recycle(&mut self, event: Event) {
        if let Event::Http(mut x) = event {
            trim_body(&mut x.request.body);
            if let Some(r) = &mut x.response {
                trim_body(&mut r.body);
            }
            self.decoder.st.spare = Some(x);
        }
    }
}

impl<R: BufRead> Iterator for TrafficReader<R> {
    type Item = Result<DecodedEvent, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(LineError {
                        line: self.decoder.st.line + 1,
                        reason: format!("read error: {e}"),
                    }));
                }
            }
            self.decoder.st.line += 1;
            let line = self.decoder.st.line;
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t.trim(),
                Err(e) => {
                    return Some(Err(LineError {
                        line,
                        reason: format!("not UTF-8: {e}"),
                    }))
                }
            };
            if text.is_empty() {
                continue;
            }
            return Some(
                self.decoder
                    .decode(text)
                    .map_err(|reason| LineError { line, reason }),
            );
        }
        None
    }
}

/// The state carried from line to line: the line counter, the previous start time, and which
/// unknown fields were already warned about.
#[derive(Debug, Default)]
pub struct Decoder {
    peers: PeerCache,
    st: LineState,
}

/// [`Decoder`]'s state apart from the peer cache (so a cached peer can be read while the rest
/// is updated).
#[derive(Debug, Default)]
struct LineState {
    line: usize,
    prev_start_ns: Option<i64>,
    warned: HashSet<String>,
    /// The last replayed HTTP exchange, handed back by [`TrafficReader::recycle`]: the next
    /// HTTP line is written into it, so its strings, header vectors and body buffers are
    /// reused instead of allocated and freed once a line (the decoder's largest cost after
    /// scanning the JSON).
    spare: Option<Box<HttpExchange>>,
}

/// Decoded peers by their JSON text. A traffic file repeats a few peers on every line, and the
/// peer object (node metadata with its label map) was about a third of decoding a line.
#[derive(Debug, Default)]
struct PeerCache {
    /// JSON text → index in `peers` (an index, so a hit is one hash of the text: a borrow
    /// returned from a first lookup could not coexist with the insert after a miss).
    map: rustc_hash::FxHashMap<Box<str>, usize>,
    peers: Vec<Peer>,
}

/// Distinct peers kept before the cache is cleared (memory stays flat on unique peers).
const PEER_CACHE_LIMIT: usize = 1024;

impl PeerCache {
    /// The peer of a strictly decoded line; `None` when the peer object does not decode
    /// strictly (an unknown field or a bad value: the line then takes the lenient path, which
    /// reports it).
    fn resolve(&mut self, raw: Option<&serde_json::value::RawValue>) -> Option<Option<&Peer>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let text = raw.get();
        let i = match self.map.get(text) {
            Some(&i) => i,
            None => {
                let parsed: strict::RawPeer = serde_json::from_str(text).ok()?;
                let peer = strict::peer(Some(parsed))?;
                if self.peers.len() >= PEER_CACHE_LIMIT {
                    self.map.clear();
                    self.peers.clear();
                }
                self.map.insert(text.into(), self.peers.len());
                self.peers.push(peer);
                self.peers.len() - 1
            }
        };
        self.peers.get(i).map(Some)
    }
}

impl Decoder {
    /// Decodes one non-blank line (the line counter must already point at it).
    pub fn decode(&mut self, text: &str) -> Result<DecodedEvent, String> {
        // Fast path: the strict shapes reject unknown fields instead of tracking key paths.
        let mut json = serde_json::Deserializer::from_str(text);
        if let Ok(mut raw) = strict::RawEvent::deserialize(&mut json) {
            if json.end().is_ok() && raw.kind() != RELOAD {
                if let Some(peer) = self.peers.resolve(raw.peer.take()) {
                    return self.st.finish(raw, peer, Vec::new());
                }
            }
        }
        // Only lines off the fast path pay for telling a control line (no `direction`) apart.
        if probe_kind(text).as_deref() == Some(RELOAD) {
            return self.decode_reload(text);
        }
        let mut ignored = Vec::new();
        let mut json = serde_json::Deserializer::from_str(text);
        // Errors are rare, so the field path is only worked out (by decoding again with
        // tracking) when there is one to report.
        let raw: Result<lenient::RawEvent, _> = serde_ignored::deserialize(&mut json, |path| {
            // serde_ignored shows Option layers as `?`.
            ignored.push(path.to_string().replace("?.", ""))
        });
        let mut raw = raw.map_err(|_| error_with_path(text))?;
        json.end().map_err(|e| strip_position(&e.to_string()))?;
        let peer = lenient::peer(raw.peer.take());
        self.st.finish(raw, peer.as_ref(), ignored)
    }

    /// A `{"kind":"reload"}` line: `start` (default: previous + 1 ms, as for events) and `vm`.
    fn decode_reload(&mut self, text: &str) -> Result<DecodedEvent, String> {
        let mut ignored = Vec::new();
        let mut json = serde_json::Deserializer::from_str(text);
        let raw: RawReload = serde_ignored::deserialize(&mut json, |path| {
            ignored.push(path.to_string().replace("?.", ""))
        })
        .map_err(|_| reload_error_with_path(text))?;
        json.end().map_err(|e| strip_position(&e.to_string()))?;
        let at_ns = match &raw.start {
            Some(s) => parse_rfc3339(s).map_err(|e| format!("start: {e}"))?,
            None => self
                .st
                .prev_start_ns
                .map_or(DEFAULT_EPOCH_NS, |p| p + 1_000_000),
        };
        self.st.prev_start_ns = Some(at_ns);
        let mut warnings = Vec::new();
        for path in ignored {
            if self.st.warned.insert(path.clone()) {
                let why = match path.as_str() {
                    "direction" | "repeat" | "duration_ms" => "does not apply to reload lines",
                    _ => "is not part of the traffic format",
                };
                warnings.push(format!("field {path:?} {why}; ignored (warned once)"));
            }
        }
        Ok(DecodedEvent {
            line: self.st.line,
            repeat: 1,
            event: Event::Reload(Reload {
                at_ns,
                new_vm: !matches!(raw.vm, Some(RawVm::Same)),
            }),
            plan: HttpPlan::default(),
            warnings,
        })
    }

    /// Advances the line counter (for callers that feed lines themselves).
    pub fn next_line(&mut self) {
        self.st.line += 1;
    }
}

impl LineState {
    /// The checks and defaults after the JSON decoded (shared by both shapes).
    fn finish<E: RawLine>(
        &mut self,
        raw: E,
        peer: Option<&Peer>,
        ignored: Vec<String>,
    ) -> Result<DecodedEvent, String> {
        let start_ns = match raw.start() {
            Some(s) => parse_rfc3339(s).map_err(|e| format!("start: {e}"))?,
            None => self
                .prev_start_ns
                .map_or(DEFAULT_EPOCH_NS, |p| p + 1_000_000),
        };
        self.prev_start_ns = Some(start_ns);
        let line = self.line;
        let mut warnings = Vec::new();
        let mut warn = |path: String, why: &str| {
            if self.warned.insert(path.clone()) {
                warnings.push(format!("field {path:?} {why}; ignored (warned once)"));
            }
        };
        for path in ignored {
            warn(path, "is not part of the traffic format");
        }
        let repeat = raw.repeat().unwrap_or(1);
        let mut plan = HttpPlan::default();
        let event = match raw.kind() {
            "http" => {
                for (name, present) in raw.tcp_fields() {
                    if present {
                        warn(name.to_string(), "applies to tcp events only");
                    }
                }
                let mut exchange = self.spare.take().unwrap_or_else(empty_exchange);
                let p = match raw.write_http(start_ns, line, peer, &mut exchange) {
                    Ok(p) => p,
                    Err(e) => {
                        self.spare = Some(exchange);
                        return Err(e);
                    }
                };
                if p.stop_after_ns.is_some() && repeat > 1 {
                    self.spare = Some(exchange);
                    return Err(format!(
                        "stop_after_ms: the replay stops inside this stream, so it cannot repeat (repeat {repeat})"
                    ));
                }
                plan = p;
                Event::Http(exchange)
            }
            "tcp" => {
                for (name, present) in raw.http_fields() {
                    if present {
                        warn(name.to_string(), "applies to http events only");
                    }
                }
                Event::Tcp(Box::new(raw.to_tcp(start_ns, line, peer.cloned())?))
            }
            other => {
                return Err(format!(
                    "kind: expected \"http\", \"tcp\" or \"reload\", got {other:?}"
                ))
            }
        };
        Ok(DecodedEvent {
            line,
            repeat,
            event,
            plan,
            warnings,
        })
    }
}

/// An exchange to write a line into when there is no recycled one.
fn empty_exchange() -> Box<HttpExchange> {
    Box::new(HttpExchange::new(Direction::Inbound))
}

/// Decodes again with path tracking to name the field at fault.
fn error_with_path(text: &str) -> String {
    let mut track = serde_path_to_error::Track::new();
    let mut json = serde_json::Deserializer::from_str(text);
    let tracked = serde_path_to_error::Deserializer::new(&mut json, &mut track);
    match lenient::RawEvent::deserialize(tracked) {
        Ok(_) => "invalid event".to_string(),
        Err(e) => {
            let path = track.path().to_string();
            let msg = strip_position(&e.to_string());
            if path == "." || path == "?" || path.is_empty() {
                msg
            } else {
                format!("{path}: {msg}")
            }
        }
    }
}

/// The control kind that has its own line shape.
const RELOAD: &str = "reload";

/// The `kind` of a line, whatever else it holds (`None` when it is not an object with a string
/// `kind`).
fn probe_kind(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        kind: String,
    }
    serde_json::from_str::<Probe>(text).ok().map(|p| p.kind)
}

/// `{"kind":"reload","start":…,"vm":"new"|"same"}`.
#[derive(Deserialize)]
struct RawReload {
    #[allow(dead_code)]
    kind: String,
    start: Option<String>,
    vm: Option<RawVm>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawVm {
    New,
    Same,
}

fn reload_error_with_path(text: &str) -> String {
    let mut track = serde_path_to_error::Track::new();
    let mut json = serde_json::Deserializer::from_str(text);
    let tracked = serde_path_to_error::Deserializer::new(&mut json, &mut track);
    match RawReload::deserialize(tracked) {
        Ok(_) => "invalid reload line".to_string(),
        Err(e) => {
            let path = track.path().to_string();
            let msg = strip_position(&e.to_string());
            if path == "." || path == "?" || path.is_empty() {
                msg
            } else {
                format!("{path}: {msg}")
            }
        }
    }
}

/// serde_json appends " at line 1 column 17"; the line is always 1 here and the column is
/// noise next to the field path.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (wire) shapes

/// Tells `"field": null` (Some(None)) from an absent field (None).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawDirection {
    Inbound,
    Outbound,
    Gateway,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawMx {
    Found,
    NotFound,
    None,
}

/// Header map: name → string or list of strings, names lower-cased, order kept, a list becoming
/// one entry per value (as repeated headers arrive on the wire).
#[derive(Default)]
struct Headers<'a>(Vec<(Str<'a>, Str<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Headers<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of header name → string or list of strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Headers<'de>, E> {
                Ok(Headers::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Headers<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(mut name) = m.next_key::<Str<'de>>()? {
                    if name.0.bytes().any(|b| b.is_ascii_uppercase()) {
                        name.0.to_mut().make_ascii_lowercase();
                    }
                    match m.next_value::<HeaderValue<'de>>()? {
                        // The common case moves the name and value in: no copies.
                        HeaderValue::One(v) => out.push((name, v)),
                        HeaderValue::Many(values) => {
                            out.extend(values.into_iter().map(|v| (name.clone(), v)))
                        }
                    }
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A header's value(s): one string (the common case, kept without a `Vec`) or a list.
enum HeaderValue<'a> {
    One(Str<'a>),
    Many(Vec<Str<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderValue<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value: string or list of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue::One(Str(std::borrow::Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue::One(Str(std::borrow::Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<HeaderValue<'de>, E> {
                Ok(HeaderValue::One(Str(std::borrow::Cow::Owned(v))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<HeaderValue<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = s.next_element::<Str<'de>>()? {
                    out.push(v);
                }
                Ok(HeaderValue::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `response.flags`: short codes (`"UO"`, `"UF,URX"`, `"-"`) or the integer bitmask.
#[derive(Default)]
struct Flags(u64);

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flags;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "response flags: short codes like \"UO\" or \"UF,URX\", \"-\", or a bitmask",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flags, E> {
                parse_flags(v).map(Flags).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flags, E> {
                Ok(Flags(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Flags, E> {
                Ok(Flags(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON string borrowed from the line when it has no escapes (the common case: no copy and
/// no allocation until the event model needs ownership), owned otherwise. Its errors read
/// exactly as `String`'s ("expected a string"), so the reported reasons did not change.
#[derive(Debug, Default, Clone)]
pub(super) struct Str<'a>(std::borrow::Cow<'a, str>);

impl Str<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }

    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn own(s: Option<Str>) -> Option<String> {
    s.map(Str::into_string)
}

/// The wire shapes of one line and their conversion, written once and instantiated twice:
/// `strict` (serde's `deny_unknown_fields`, the fast path: no per-key path tracking) and
/// `lenient` (unknown fields skipped, each reported with its path through `serde_ignored`).
/// A line is decoded strictly first; only a line that fails (an unknown field, a bad value) is
/// decoded again leniently, so lines without unknown fields pay nothing for the warnings.
macro_rules! raw_shapes {
    ($peer:ty; $(#[$strict:meta])*) => {
        #[derive(Deserialize)]
        $(#[$strict])*
        pub(super) struct RawEvent<'a> {
            #[serde(borrow)]
            kind: Str<'a>,
            direction: RawDirection,
            #[serde(borrow)]
            start: Option<Str<'a>>,
            duration_ms: Option<f64>,
            repeat: Option<u32>,
            #[serde(borrow)]
            request: Option<RawRequest<'a>>,
            #[serde(borrow, default, deserialize_with = "present")]
            response: Option<Option<RawResponse<'a>>>,
            #[serde(borrow)]
            pub(super) peer: Option<$peer>,
            #[serde(borrow)]
            connection: Option<RawConnection<'a>>,
            #[serde(borrow)]
            upstream: Option<RawUpstream<'a>>,
            #[serde(borrow)]
            route_name: Option<Str<'a>>,
            /// Addition to the contract: gRPC message batches `[{request, response}, …]` the
            /// grpc_stats filter counts (summed; see `HttpExchange::grpc_messages`).
            grpc_messages: Option<Vec<RawGrpcMessages>>,
            /// Addition: stop the replay this many ms into the stream, the stream still open.
            stop_after_ms: Option<f64>,
            // TCP
            sent_bytes: Option<u64>,
            received_bytes: Option<u64>,
            chunks: Option<u32>,
            mx: Option<RawMx>,
        }

        #[derive(Deserialize, Default)]
        $(#[$strict])*
        pub(super) struct RawGrpcMessages {
            #[serde(default)]
            request: u64,
            #[serde(default)]
            response: u64,
            /// Addition: when (ms after the stream's start) the batch has passed grpc_stats;
            /// absent: counted from the request headers on.
            at_ms: Option<f64>,
        }

        #[derive(Deserialize, Default)]
        $(#[$strict])*
        pub(super) struct RawRequest<'a> {
            #[serde(borrow)]
            method: Option<Str<'a>>,
            #[serde(borrow)]
            path: Option<Str<'a>>,
            #[serde(borrow)]
            authority: Option<Str<'a>>,
            #[serde(borrow)]
            scheme: Option<Str<'a>>,
            #[serde(borrow)]
            protocol: Option<Str<'a>>,
            #[serde(borrow, default)]
            headers: Headers<'a>,
            body_bytes: Option<u64>,
            #[serde(borrow)]
            body: Option<Str<'a>>,
        }

        #[derive(Deserialize, Default)]
        $(#[$strict])*
        pub(super) struct RawResponse<'a> {
            code: Option<u32>,
            #[serde(borrow, default)]
            headers: Headers<'a>,
            body_bytes: Option<u64>,
            #[serde(borrow)]
            body: Option<Str<'a>>,
            grpc_status: Option<u32>,
            #[serde(default)]
            flags: Flags,
            #[serde(borrow)]
            code_details: Option<Str<'a>>,
        }

        #[derive(Deserialize)]
        $(#[$strict])*
        pub(super) struct RawPeer<'a> {
            #[serde(borrow)]
            id: Option<Str<'a>>,
            #[serde(default)]
            node: Map<String, Json>,
        }

        #[derive(Deserialize, Default)]
        $(#[$strict])*
        pub(super) struct RawConnection<'a> {
            id: Option<u64>,
            #[serde(default)]
            mtls: bool,
            #[serde(borrow)]
            peer_principal: Option<Str<'a>>,
            #[serde(borrow)]
            local_principal: Option<Str<'a>>,
            #[serde(borrow)]
            source_address: Option<Str<'a>>,
            #[serde(borrow)]
            destination_address: Option<Str<'a>>,
            #[serde(borrow)]
            requested_server_name: Option<Str<'a>>,
        }

        #[derive(Deserialize, Default)]
        $(#[$strict])*
        pub(super) struct RawUpstream<'a> {
            #[serde(borrow)]
            cluster: Option<Str<'a>>,
            #[serde(borrow)]
            address: Option<Str<'a>>,
            #[serde(borrow)]
            service: Option<RawService<'a>>,
            #[serde(borrow)]
            endpoint_metadata: Option<Str<'a>>,
        }

        #[derive(Deserialize)]
        $(#[$strict])*
        pub(super) struct RawService<'a> {
            #[serde(borrow, default)]
            name: Str<'a>,
            #[serde(borrow, default)]
            namespace: Str<'a>,
            #[serde(borrow, default)]
            host: Str<'a>,
        }

        pub(super) fn peer(raw: Option<RawPeer>) -> Option<Peer> {
            let raw = raw?;
            let id = own(raw.id).unwrap_or_else(|| default_peer_id(&raw.node));
            Some(Peer {
                id,
                metadata: std::sync::Arc::new(raw.node),
            })
        }

        /// Writes the connection into `out` (every field), reusing its strings.
        pub(super) fn fill_connection(
            raw: Option<&RawConnection>,
            line: usize,
            out: &mut ConnectionInfo,
        ) {
            let absent;
            let raw = match raw {
                Some(r) => r,
                None => {
                    absent = RawConnection::default();
                    &absent
                }
            };
            let ConnectionInfo {
                id,
                mtls,
                local_principal,
                peer_principal,
                source_address,
                destination_address,
                requested_server_name,
            } = out;
            *id = raw.id.unwrap_or(line as u64);
            *mtls = raw.mtls;
            fill_opt(local_principal, raw.local_principal.as_ref());
            fill_opt(peer_principal, raw.peer_principal.as_ref());
            fill(source_address, opt_str(&raw.source_address, ""));
            fill(destination_address, opt_str(&raw.destination_address, ""));
            fill(requested_server_name, opt_str(&raw.requested_server_name, ""));
        }

        /// Writes the upstream into `out` (every field), reusing its strings;
        /// `default_cluster` writes the cluster name into a cleared string when none is given.
        pub(super) fn fill_upstream(
            raw: Option<&RawUpstream>,
            out: &mut UpstreamInfo,
            default_cluster: impl FnOnce(&Option<RawService>, &mut String),
        ) {
            let absent;
            let raw = match raw {
                Some(r) => r,
                None => {
                    absent = RawUpstream::default();
                    &absent
                }
            };
            let UpstreamInfo {
                cluster_name,
                address,
                service,
                endpoint_workload,
            } = out;
            match &raw.cluster {
                Some(c) => fill(cluster_name, c.as_str()),
                None => {
                    cluster_name.clear();
                    default_cluster(&raw.service, cluster_name);
                }
            }
            fill_opt(address, raw.address.as_ref());
            match (&raw.service, service) {
                (None, dst) => *dst = None,
                (Some(s), Some(dst)) => {
                    let ServiceRef {
                        name,
                        namespace,
                        host,
                    } = dst;
                    fill(name, s.name.as_str());
                    fill(namespace, s.namespace.as_str());
                    fill(host, s.host.as_str());
                }
                (Some(s), dst) => {
                    *dst = Some(ServiceRef {
                        name: s.name.as_str().to_owned(),
                        namespace: s.namespace.as_str().to_owned(),
                        host: s.host.as_str().to_owned(),
                    })
                }
            }
            fill_opt(endpoint_workload, raw.endpoint_metadata.as_ref());
        }

        impl RawLine for RawEvent<'_> {
            fn kind(&self) -> &str {
                self.kind.as_str()
            }

            fn start(&self) -> Option<&str> {
                self.start.as_ref().map(Str::as_str)
            }

            fn repeat(&self) -> Option<u32> {
                self.repeat
            }

            fn tcp_fields(&self) -> [(&'static str, bool); 4] {
                [
                    ("sent_bytes", self.sent_bytes.is_some()),
                    ("received_bytes", self.received_bytes.is_some()),
                    ("chunks", self.chunks.is_some()),
                    ("mx", self.mx.is_some()),
                ]
            }

            fn http_fields(&self) -> [(&'static str, bool); 5] {
                [
                    ("request", self.request.is_some()),
                    ("response", self.response.is_some()),
                    ("route_name", self.route_name.is_some()),
                    ("grpc_messages", self.grpc_messages.is_some()),
                    ("stop_after_ms", self.stop_after_ms.is_some()),
                ]
            }

            fn write_http(
                &self,
                start_ns: i64,
                line: usize,
                peer: Option<&Peer>,
                out: &mut HttpExchange,
            ) -> Result<HttpPlan, String> {
                let dir = direction(self.direction);
                let duration_ns = duration_ns(self.duration_ms)?;
                let batches: Vec<(Option<f64>, u64, u64)> = self
                    .grpc_messages
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(|b| (b.at_ms, b.request, b.response))
                    .collect();
                let plan = http_plan(&batches, self.stop_after_ms, duration_ns)?;
                let absent_req;
                let req = match &self.request {
                    Some(r) => r,
                    None => {
                        absent_req = RawRequest::default();
                        &absent_req
                    }
                };
                let absent_resp;
                let resp = match &self.response {
                    None => {
                        absent_resp = RawResponse::default();
                        Some(&absent_resp)
                    }
                    Some(r) => r.as_ref(),
                };
                // Every check before the first write: a rejected line leaves nothing half-set
                // that matters (the next line overwrites all of `out` anyway).
                let req_body = body(req.body_bytes, &req.body, "request")?;
                let resp_body = match &resp {
                    Some(r) => body(r.body_bytes, &r.body, "response")?,
                    None => Body::Empty,
                };
                let grpc_status = resp.as_ref().and_then(|r| r.grpc_status);
                let scheme = opt_str(&req.scheme, "http");
                let authority = opt_str(&req.authority, "");
                let default_protocol = if grpc_status.is_some() {
                    "HTTP/2"
                } else {
                    "HTTP/1.1"
                };

                // Exhaustive: a field added to the event model must be written here too, or a
                // recycled event's value would leak into this line.
                let HttpExchange {
                    direction: out_direction,
                    start_ns: out_start_ns,
                    duration_ns: out_duration_ns,
                    protocol,
                    request,
                    response,
                    response_flags,
                    code_details,
                    connection,
                    upstream,
                    route_name,
                    peer: out_peer,
                    grpc_messages,
                } = out;
                *out_direction = dir;
                *out_start_ns = start_ns;
                *out_duration_ns = duration_ns;
                fill(protocol, opt_str(&req.protocol, default_protocol));

                fill_connection(self.connection.as_ref(), line, connection);
                // Only a line without `upstream.cluster` needs the authority and addresses split.
                let destination = connection.destination_address.as_str();
                fill_upstream(self.upstream.as_ref(), upstream, |_, name| {
                    let (host, authority_port) = split_host_port(authority);
                    let port = authority_port.unwrap_or_else(|| scheme_port(scheme));
                    match dir {
                        Direction::Inbound => {
                            let dest_port = split_host_port(destination).1;
                            inbound_cluster(name, dest_port.unwrap_or(port))
                        }
                        Direction::Outbound | Direction::Gateway => {
                            let _ = write!(name, "outbound|{port}||{host}");
                        }
                    }
                });

                // Pseudo-headers first, in the order Envoy's HTTP/1 codec and HCM leave them.
                let mut headers = HeaderFill::new(&mut request.headers);
                if !authority.is_empty() {
                    headers.push(":authority", authority);
                }
                headers.push(":path", opt_str(&req.path, "/"));
                headers.push(":method", opt_str(&req.method, "GET"));
                headers.push(":scheme", scheme);
                for (k, v) in &req.headers.0 {
                    headers.push(k.as_str(), v.as_str());
                }
                if grpc_status.is_some() && !headers.has("content-type") {
                    headers.push("content-type", "application/grpc");
                }
                headers.finish();
                fill_body(&mut request.body, req_body);
                request.trailers.clear();

                match &resp {
                    None => {
                        *response = None;
                        *response_flags = 0;
                        fill(code_details, "-");
                    }
                    Some(r) => {
                        let msg = response.get_or_insert_with(HttpMessage::default);
                        let mut headers = HeaderFill::new(&mut msg.headers);
                        let _ = write!(headers.entry(":status"), "{}", r.code.unwrap_or(200));
                        for (k, v) in &r.headers.0 {
                            headers.push(k.as_str(), v.as_str());
                        }
                        let mut trailers = HeaderFill::new(&mut msg.trailers);
                        if let Some(status) = r.grpc_status {
                            if !headers.has("content-type") {
                                headers.push("content-type", "application/grpc");
                            }
                            let _ = write!(trailers.entry("grpc-status"), "{status}");
                        }
                        headers.finish();
                        trailers.finish();
                        fill_body(&mut msg.body, resp_body);
                        *response_flags = r.flags.0;
                        fill(code_details, opt_str(&r.code_details, "via_upstream"));
                    }
                }

                fill(route_name, opt_str(&self.route_name, "default"));
                fill_peer(out_peer, peer);
                *grpc_messages = self.grpc_messages.as_ref().map(|batches| {
                    batches.iter().fold((0u64, 0u64), |(q, r), b| {
                        (q.saturating_add(b.request), r.saturating_add(b.response))
                    })
                });
                Ok(plan)
            }

            fn to_tcp(
                &self,
                start_ns: i64,
                line: usize,
                peer: Option<Peer>,
            ) -> Result<TcpConnection, String> {
                let dir = direction(self.direction);
                let mut connection = ConnectionInfo::default();
                fill_connection(self.connection.as_ref(), line, &mut connection);
                let dest_port = split_host_port(&connection.destination_address).1;
                let mut upstream = UpstreamInfo::default();
                fill_upstream(self.upstream.as_ref(), &mut upstream, |service, name| match dir {
                    Direction::Inbound => inbound_cluster(name, dest_port.unwrap_or(0)),
                    Direction::Outbound | Direction::Gateway => {
                        match (service.as_ref().map(|s| s.host.as_str()), dest_port) {
                            (Some(host), Some(port)) if !host.is_empty() => {
                                let _ = write!(name, "outbound|{port}||{host}");
                            }
                            _ => name.push_str("PassthroughCluster"),
                        }
                    }
                });
                let mx = match self.mx {
                    Some(RawMx::Found) => MxOutcome::Found,
                    Some(RawMx::NotFound) => MxOutcome::NotFound,
                    Some(RawMx::None) => MxOutcome::None,
                    None if peer.is_some() => MxOutcome::Found,
                    None => MxOutcome::None,
                };
                if mx == MxOutcome::Found && peer.is_none() {
                    return Err("mx: \"found\" needs a peer".into());
                }
                Ok(TcpConnection {
                    direction: dir,
                    start_ns,
                    duration_ns: duration_ns(self.duration_ms)?,
                    received_bytes: self.received_bytes.unwrap_or(0),
                    sent_bytes: self.sent_bytes.unwrap_or(0),
                    chunks: self.chunks.unwrap_or(1).max(1),
                    connection,
                    upstream,
                    peer,
                    mx,
                })
            }
        }

    };
}

mod strict {
    use super::*;
    // The peer stays raw text here: `Decoder` decodes each distinct peer once (`PeerCache`).
    raw_shapes!(&'a serde_json::value::RawValue; #[serde(deny_unknown_fields)]);
}

mod lenient {
    use super::*;
    raw_shapes!(RawPeer<'a>;);
}

/// What [`Decoder::finish`] needs from either shape.
trait RawLine {
    fn start(&self) -> Option<&str>;
    fn repeat(&self) -> Option<u32>;
    fn kind(&self) -> &str;
    fn tcp_fields(&self) -> [(&'static str, bool); 4];
    fn http_fields(&self) -> [(&'static str, bool); 5];
    /// Writes the exchange into `out`, every field of it (`out` may be a recycled event).
    fn write_http(
        &self,
        start_ns: i64,
        line: usize,
        peer: Option<&Peer>,
        out: &mut HttpExchange,
    ) -> Result<HttpPlan, String>;
    fn to_tcp(
        &self,
        start_ns: i64,
        line: usize,
        peer: Option<Peer>,
    ) -> Result<TcpConnection, String>;
}

// ---------------------------------------------------------------------------------------------
// Raw → stream descriptions

fn duration_ns(ms: Option<f64>) -> Result<i64, String> {
    let ms = ms.unwrap_or(1.0);
    if !(0.0..=1e12).contains(&ms) {
        return Err(format!("duration_ms: must be a number ≥ 0, got {ms}"));
    }
    Ok((ms * NS_PER_MS).round() as i64)
}

/// `at_ms` / `stop_after_ms` → ns, checked against the stream: a time is a number ≥ 0 within
/// the stream (`at_ms` ≤ `duration_ms`, `stop_after_ms` < `duration_ms`), timed batches in
/// time order.
fn http_plan(
    batches: &[(Option<f64>, u64, u64)],
    stop_after_ms: Option<f64>,
    duration_ns: i64,
) -> Result<HttpPlan, String> {
    let duration_ms = duration_ns as f64 / NS_PER_MS;
    let mut plan = HttpPlan::default();
    let (mut q, mut r) = (0u64, 0u64);
    let mut last_at = 0i64;
    for (i, (at_ms, req, resp)) in batches.iter().enumerate() {
        let Some(at_ms) = at_ms else {
            plan.grpc_initial.0 = plan.grpc_initial.0.saturating_add(*req);
            plan.grpc_initial.1 = plan.grpc_initial.1.saturating_add(*resp);
            continue;
        };
        let field = format!("grpc_messages[{i}].at_ms");
        if !(0.0..=1e12).contains(at_ms) {
            return Err(format!("{field}: must be a number ≥ 0, got {at_ms}"));
        }
        let at_ns = (at_ms * NS_PER_MS).round() as i64;
        if at_ns > duration_ns {
            return Err(format!(
                "{field}: {at_ms} is after the stream's end (duration_ms {duration_ms})"
            ));
        }
        if at_ns < last_at {
            return Err(format!(
                "{field}: {at_ms} is before the previous timed batch; give batches in time order"
            ));
        }
        last_at = at_ns;
        q = q.saturating_add(*req);
        r = r.saturating_add(*resp);
        plan.grpc_timeline.push(GrpcProgress {
            at_ns,
            requests: q,
            responses: r,
        });
    }
    // Running totals include what was there from the headers on.
    for p in &mut plan.grpc_timeline {
        p.requests = p.requests.saturating_add(plan.grpc_initial.0);
        p.responses = p.responses.saturating_add(plan.grpc_initial.1);
    }
    if let Some(stop) = stop_after_ms {
        if !(0.0..=1e12).contains(&stop) {
            return Err(format!("stop_after_ms: must be a number ≥ 0, got {stop}"));
        }
        let stop_ns = (stop * NS_PER_MS).round() as i64;
        if stop_ns >= duration_ns {
            return Err(format!(
                "stop_after_ms: {stop} is not before the stream's end (duration_ms {duration_ms}); a stream that ends needs no stop"
            ));
        }
        plan.stop_after_ns = Some(stop_ns);
    }
    Ok(plan)
}

fn direction(d: RawDirection) -> Direction {
    match d {
        RawDirection::Inbound => Direction::Inbound,
        RawDirection::Outbound => Direction::Outbound,
        RawDirection::Gateway => Direction::Gateway,
    }
}

/// Splits `host:port` / `[v6]:port` / `host`; the port is None when absent or not a number.
fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..]
                .strip_prefix(':')
                .and_then(|p| p.parse().ok());
            return (&authority[..end + 2], port);
        }
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (authority, None),
    }
}

fn scheme_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

/// Where a message body comes from.
enum Body<'t> {
    Empty,
    /// `body_bytes`: that many filler bytes.
    Filler(usize),
    /// `body`: the text.
    Text(&'t str),
}

fn body<'t>(bytes: Option<u64>, text: &'t Option<Str>, what: &str) -> Result<Body<'t>, String> {
    match (bytes, text) {
        (Some(_), Some(_)) => Err(format!("{what}: give body_bytes or body, not both")),
        (None, Some(t)) => Ok(Body::Text(t.as_str())),
        (Some(n), None) if n > 1 << 30 => Err(format!("{what}.body_bytes: {n} is over 1 GiB")),
        (Some(n), None) => Ok(Body::Filler(n as usize)),
        (None, None) => Ok(Body::Empty),
    }
}

/// Writes a body into a (possibly recycled) buffer.
fn fill_body(dst: &mut Vec<u8>, src: Body) {
    dst.clear();
    match src {
        Body::Empty => {}
        // The filler byte is irrelevant to telemetry; only the size is observed.
        Body::Filler(n) => dst.resize(n, b'x'),
        Body::Text(t) => dst.extend_from_slice(t.as_bytes()),
    }
}

/// A recycled body buffer larger than this is dropped rather than kept for later lines (a
/// rare huge body is not held on to).
const BODY_KEEP_MAX_BYTES: usize = 1 << 16;

fn trim_body(body: &mut Vec<u8>) {
    if body.capacity() > BODY_KEEP_MAX_BYTES {
        *body = Vec::new();
    }
}

/// `dst = src`, keeping `dst`'s allocation.
fn fill(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

/// `dst = src.map(to_owned)`, keeping `dst`'s allocation when both are set.
fn fill_opt(dst: &mut Option<String>, src: Option<&Str>) {
    match (src, dst) {
        (None, dst) => *dst = None,
        (Some(s), Some(d)) => fill(d, s.as_str()),
        (Some(s), dst) => *dst = Some(s.as_str().to_owned()),
    }
}

fn opt_str<'s>(s: &'s Option<Str>, default: &'s str) -> &'s str {
    s.as_ref().map_or(default, Str::as_str)
}

/// `dst = src.cloned()`, keeping `dst`'s id allocation.
fn fill_peer(dst: &mut Option<Peer>, src: Option<&Peer>) {
    match (src, dst) {
        (None, dst) => *dst = None,
        (Some(s), Some(d)) => {
            let Peer { id, metadata } = d;
            fill(id, &s.id);
            if !std::sync::Arc::ptr_eq(metadata, &s.metadata) {
                *metadata = s.metadata.clone();
            }
        }
        (Some(s), dst) => *dst = Some(s.clone()),
    }
}

/// Writes a header list into a (possibly recycled) vector, entry by entry, reusing the
/// strings already there; [`HeaderFill::finish`] drops what the previous event had beyond.
struct HeaderFill<'v> {
    v: &'v mut Vec<(String, String)>,
    n: usize,
}

impl<'v> HeaderFill<'v> {
    fn new(v: &'v mut Vec<(String, String)>) -> Self {
        Self { v, n: 0 }
    }

    /// Appends `name` and returns its value, empty, to be written.
    fn entry(&mut self, name: &str) -> &mut String {
        // `n` never passes `len` (it starts at 0 and grows by one, pushing at `len`).
        if self.n == self.v.len() {
            self.v.push(Default::default());
        }
        let (k, v) = &mut self.v[self.n];
        self.n += 1;
        fill(k, name);
        v.clear();
        v
    }

    fn push(&mut self, name: &str, value: &str) {
        self.entry(name).push_str(value);
    }

    fn has(&self, name: &str) -> bool {
        self.v.iter().take(self.n).any(|(k, _)| k == name)
    }

    fn finish(self) {
        self.v.truncate(self.n);
    }
}

/// The Envoy node id an Istio sidecar of this metadata would carry.
fn default_peer_id(node: &Map<String, Json>) -> String {
    let s = |k: &str| node.get(k).and_then(Json::as_str).unwrap_or("");
    let ip = s("INSTANCE_IPS")
        .split(',')
        .next()
        .filter(|i| !i.is_empty());
    let name = Some(s("NAME"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| s("WORKLOAD_NAME"));
    let ns = s("NAMESPACE");
    format!(
        "sidecar~{}~{}.{ns}~{ns}.svc.cluster.local",
        ip.unwrap_or("0.0.0.0"),
        if name.is_empty() { "unknown" } else { name }
    )
}

fn inbound_cluster(dst: &mut String, port: u16) {
    let _ = write!(dst, "inbound|{port}||");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Result<DecodedEvent, LineError>> {
        TrafficReader::new(text.as_bytes()).collect()
    }

    fn http(ev: &Result<DecodedEvent, LineError>) -> &HttpExchange {
        match ev {
            Ok(DecodedEvent {
                event: Event::Http(h),
                ..
            }) => h,
            other => panic!("not an http event: {other:?}"),
        }
    }

    #[test]
    fn grpc_message_batches_are_summed() {
        // Istio's TestStatsGrpcStream: 3 requests / 13 responses, then 5 / 14 more: 8 and 27.
        let evs = read(
            r#"{"kind":"http","direction":"inbound","response":{"grpc_status":0},"grpc_messages":[{"request":3,"response":13},{"request":5,"response":14}]}
{"kind":"http","direction":"inbound"}"#,
        );
        assert_eq!(http(&evs[0]).grpc_messages, Some((8, 27)));
        assert_eq!(http(&evs[1]).grpc_messages, None);
    }

    fn tcp(ev: &Result<DecodedEvent, LineError>) -> &TcpConnection {
        match ev {
            Ok(DecodedEvent {
                event: Event::Tcp(t),
                ..
            }) => t,
            other => panic!("not a tcp event: {other:?}"),
        }
    }

    #[test]
    fn minimal_http_event_gets_every_default() {
        let evs = read(r#"{"kind":"http","direction":"outbound"}"#);
        let h = http(&evs[0]);
        assert_eq!(h.direction, Direction::Outbound);
        assert_eq!(h.start_ns, DEFAULT_EPOCH_NS);
        assert_eq!(h.duration_ns, 1_000_000);
        assert_eq!(h.protocol, "HTTP/1.1");
        assert_eq!(
            h.request.headers,
            vec![
                (":path".into(), "/".into()),
                (":method".into(), "GET".into()),
                (":scheme".into(), "http".into())
            ]
        );
        assert!(h.request.body.is_empty());
        let resp = h.response.as_ref().unwrap();
        assert_eq!(resp.headers, vec![(":status".into(), "200".into())]);
        assert!(resp.trailers.is_empty());
        assert_eq!(h.response_flags, 0);
        assert_eq!(h.code_details, "via_upstream");
        assert_eq!(h.route_name, "default");
        assert_eq!(h.peer, None);
        assert!(!h.connection.mtls);
        assert_eq!(h.connection.peer_principal, None);
        assert_eq!(h.upstream.cluster_name, "outbound|80||");
        assert_eq!(h.upstream.service, None);
        assert_eq!(evs[0].as_ref().unwrap().repeat, 1);
    }

    #[test]
    fn contract_example_decodes_field_by_field() {
        let line = r#"{"kind":"http","direction":"outbound",
 "start":"2025-04-20T04:22:24.317Z","duration_ms":156,"repeat":3,
 "request":{"method":"GET","path":"/items?x=1","authority":"catalog.istioinaction:80",
            "scheme":"http","protocol":"HTTP/1.1",
            "headers":{"User-Agent":"curl/8.7.1","x-user":["jason","ann"]},"body_bytes":0},
 "response":{"code":200,"headers":{"content-type":"application/json"},"body_bytes":278,
             "grpc_status":null,"flags":"-","code_details":"via_upstream"},
 "peer":{"id":"sidecar~10.10.0.14~catalog-6cf4b97d-abcde.istioinaction~istioinaction.svc.cluster.local",
         "node":{"NAME":"catalog-6cf4b97d-abcde","NAMESPACE":"istioinaction","WORKLOAD_NAME":"catalog",
                 "LABELS":{"app":"catalog","version":"v1"},"CLUSTER_ID":"Kubernetes",
                 "MESH_ID":"cluster.local","ISTIO_VERSION":"1.17.8"}},
 "connection":{"mtls":true,"peer_principal":"spiffe://cluster.local/ns/istioinaction/sa/catalog",
               "local_principal":"spiffe://cluster.local/ns/istioinaction/sa/webapp",
               "source_address":"10.10.0.17:46590","destination_address":"10.10.0.14:3000",
               "requested_server_name":""},
 "upstream":{"cluster":"outbound|80||catalog.istioinaction.svc.cluster.local","address":"10.10.0.14:3000",
             "service":{"name":"catalog","namespace":"istioinaction","host":"catalog.istioinaction.svc.cluster.local"},
             "endpoint_metadata":null},
 "route_name":"default"}"#
            .replace('\n', "");
        let evs = read(&line);
        assert_eq!(evs.len(), 1);
        let ev = evs[0].as_ref().unwrap();
        assert_eq!(ev.repeat, 3);
        assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
        let h = http(&evs[0]);
        assert_eq!(h.start_ns, 1_745_122_944_317_000_000);
        assert_eq!(h.duration_ns, 156_000_000);
        assert_eq!(
            h.request.headers,
            [
                (":authority", "catalog.istioinaction:80"),
                (":path", "/items?x=1"),
                (":method", "GET"),
                (":scheme", "http"),
                ("user-agent", "curl/8.7.1"),
                ("x-user", "jason"),
                ("x-user", "ann"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let resp = h.response.as_ref().unwrap();
        assert_eq!(resp.body.len(), 278);
        assert_eq!(
            resp.headers[1],
            ("content-type".into(), "application/json".into())
        );
        let peer = h.peer.as_ref().unwrap();
        assert!(peer.id.starts_with("sidecar~10.10.0.14~"));
        assert_eq!(peer.metadata["WORKLOAD_NAME"], "catalog");
        assert_eq!(peer.metadata["LABELS"]["version"], "v1");
        assert!(h.connection.mtls);
        assert_eq!(
            h.connection.local_principal.as_deref(),
            Some("spiffe://cluster.local/ns/istioinaction/sa/webapp")
        );
        assert_eq!(h.connection.destination_address, "10.10.0.14:3000");
        assert_eq!(h.upstream.address.as_deref(), Some("10.10.0.14:3000"));
        assert_eq!(
            h.upstream.service,
            Some(ServiceRef {
                name: "catalog".into(),
                namespace: "istioinaction".into(),
                host: "catalog.istioinaction.svc.cluster.local".into()
            })
        );
        assert_eq!(h.upstream.endpoint_workload, None);
    }

    #[test]
    fn start_defaults_step_one_ms_from_the_previous_event() {
        let evs = read(concat!(
            "{\"kind\":\"http\",\"direction\":\"inbound\"}\n",
            "\n",
            "{\"kind\":\"tcp\",\"direction\":\"inbound\"}\n",
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"start\":\"2025-04-20T04:22:24Z\"}\n",
            "{\"kind\":\"http\",\"direction\":\"inbound\"}\n",
        ));
        assert_eq!(evs.len(), 4, "the blank line is skipped silently");
        assert_eq!(http(&evs[0]).start_ns, DEFAULT_EPOCH_NS);
        assert_eq!(tcp(&evs[1]).start_ns, DEFAULT_EPOCH_NS + 1_000_000);
        assert_eq!(evs[1].as_ref().unwrap().line, 3);
        let t = parse_rfc3339("2025-04-20T04:22:24Z").unwrap();
        assert_eq!(http(&evs[2]).start_ns, t);
        assert_eq!(http(&evs[3]).start_ns, t + 1_000_000);
    }

    #[test]
    fn default_clusters_per_direction() {
        let evs = read(concat!(
            r#"{"kind":"http","direction":"inbound","request":{"authority":"webapp.istioinaction.io:30000"},"connection":{"destination_address":"10.10.0.17:8080"}}"#,
            "\n",
            r#"{"kind":"http","direction":"inbound","request":{"authority":"webapp:9080"}}"#,
            "\n",
            r#"{"kind":"http","direction":"inbound","request":{"scheme":"https"}}"#,
            "\n",
            r#"{"kind":"http","direction":"outbound","request":{"authority":"catalog.istioinaction"}}"#,
            "\n",
            r#"{"kind":"http","direction":"gateway","request":{"authority":"webapp.istioinaction:8080"}}"#,
            "\n",
            r#"{"kind":"tcp","direction":"inbound","connection":{"destination_address":"10.0.0.1:9000"}}"#,
            "\n",
            r#"{"kind":"tcp","direction":"outbound","connection":{"destination_address":"10.0.0.2:6379"},"upstream":{"service":{"name":"redis","namespace":"db","host":"redis.db.svc.cluster.local"}}}"#,
            "\n",
            r#"{"kind":"tcp","direction":"outbound"}"#,
        ));
        assert_eq!(http(&evs[0]).upstream.cluster_name, "inbound|8080||");
        assert_eq!(http(&evs[1]).upstream.cluster_name, "inbound|9080||");
        assert_eq!(http(&evs[2]).upstream.cluster_name, "inbound|443||");
        assert_eq!(
            http(&evs[3]).upstream.cluster_name,
            "outbound|80||catalog.istioinaction"
        );
        assert_eq!(
            http(&evs[4]).upstream.cluster_name,
            "outbound|8080||webapp.istioinaction"
        );
        assert_eq!(tcp(&evs[5]).upstream.cluster_name, "inbound|9000||");
        assert_eq!(
            tcp(&evs[6]).upstream.cluster_name,
            "outbound|6379||redis.db.svc.cluster.local"
        );
        assert_eq!(tcp(&evs[7]).upstream.cluster_name, "PassthroughCluster");
    }

    #[test]
    fn flags_grpc_bodies_and_reset() {
        let evs = read(concat!(
            r#"{"kind":"http","direction":"outbound","response":{"code":503,"flags":"UO","code_details":"overflow"}}"#,
            "\n",
            r#"{"kind":"http","direction":"outbound","response":{"code":503,"flags":"UF,URX"}}"#,
            "\n",
            r#"{"kind":"http","direction":"outbound","response":{"flags":160}}"#,
            "\n",
            r#"{"kind":"http","direction":"outbound","request":{"method":"POST","body":"héllo"},"response":{"grpc_status":7}}"#,
            "\n",
            r#"{"kind":"http","direction":"outbound","response":null}"#,
        ));
        assert_eq!(http(&evs[0]).response_flags, 0x80);
        assert_eq!(http(&evs[0]).code_details, "overflow");
        assert_eq!(http(&evs[0]).response.as_ref().unwrap().headers[0].1, "503");
        assert_eq!(http(&evs[1]).response_flags, 0x8020);
        assert_eq!(http(&evs[2]).response_flags, 160);
        let g = http(&evs[3]);
        assert_eq!(g.protocol, "HTTP/2");
        assert_eq!(g.request.body, "héllo".as_bytes());
        assert!(g
            .request
            .headers
            .contains(&("content-type".into(), "application/grpc".into())));
        let resp = g.response.as_ref().unwrap();
        assert!(resp
            .headers
            .contains(&("content-type".into(), "application/grpc".into())));
        assert_eq!(resp.trailers, vec![("grpc-status".into(), "7".into())]);
        assert_eq!(http(&evs[4]).response, None);
    }

    #[test]
    fn tcp_fields_and_mx_default() {
        let evs = read(concat!(
            r#"{"kind":"tcp","direction":"inbound","start":"2025-04-20T04:22:30Z","duration_ms":2500,"sent_bytes":1024,"received_bytes":4096,"chunks":4,"peer":{"node":{"NAME":"web-1","NAMESPACE":"ns","INSTANCE_IPS":"10.1.2.3,fd00::1"}},"connection":{"mtls":true},"upstream":{"cluster":"inbound|9000||"}}"#,
            "\n",
            r#"{"kind":"tcp","direction":"outbound","mx":"not_found"}"#,
            "\n",
            r#"{"kind":"tcp","direction":"outbound"}"#,
        ));
        let t = tcp(&evs[0]);
        assert_eq!(t.duration_ns, 2_500_000_000);
        assert_eq!((t.sent_bytes, t.received_bytes, t.chunks), (1024, 4096, 4));
        assert_eq!(t.mx, MxOutcome::Found);
        assert_eq!(
            t.peer.as_ref().unwrap().id,
            "sidecar~10.1.2.3~web-1.ns~ns.svc.cluster.local"
        );
        assert_eq!(t.upstream.cluster_name, "inbound|9000||");
        assert!(t.connection.mtls);
        assert_eq!(tcp(&evs[1]).mx, MxOutcome::NotFound);
        assert_eq!(tcp(&evs[2]).mx, MxOutcome::None);
        assert_eq!(tcp(&evs[2]).chunks, 1);
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let evs = read(concat!(
            "{\"kind\":\"http\",\"direction\":\"inbound\"}\n", // 1 ok
            "{not json\n",                                     // 2
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"duration_ms\":\"slow\"}\n", // 3
            "{\"kind\":\"http\",\"direction\":\"sideways\"}\n", // 4
            "{\"kind\":\"udp\",\"direction\":\"inbound\"}\n",   // 5
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"response\":{\"flags\":\"UO,ZZ\"}}\n", // 6
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"start\":\"yesterday\"}\n", // 7
            "{\"direction\":\"inbound\"}\n",                     // 8
            "{\"kind\":\"http\",\"direction\":\"inbound\"} trailing\n", // 9
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"request\":{\"headers\":{\"a\":1}}}\n", // 10
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"request\":{\"body\":\"x\",\"body_bytes\":1}}\n", // 11
            "{\"kind\":\"tcp\",\"direction\":\"inbound\",\"mx\":\"found\"}\n", // 12
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"duration_ms\":-1}\n", // 13
            "{\"kind\":\"http\",\"direction\":\"outbound\"}\n", // 14 ok
        ));
        let errors: Vec<(usize, String)> = evs
            .iter()
            .filter_map(|e| e.as_ref().err())
            .map(|e| (e.line, e.reason.clone()))
            .collect();
        let lines: Vec<usize> = errors.iter().map(|e| e.0).collect();
        assert_eq!(lines, (2..=13).collect::<Vec<_>>(), "{errors:#?}");
        let reason = |line: usize| &errors[line - 2].1;
        assert!(
            reason(3).starts_with("duration_ms: invalid type: string \"slow\""),
            "{}",
            reason(3)
        );
        assert!(
            reason(4).starts_with("direction: unknown variant `sideways`"),
            "{}",
            reason(4)
        );
        assert!(reason(5).contains("\"udp\""), "{}", reason(5));
        assert!(
            reason(6).starts_with("response.flags: unknown response flag \"ZZ\""),
            "{}",
            reason(6)
        );
        assert!(
            reason(7).starts_with("start: invalid RFC 3339 time"),
            "{}",
            reason(7)
        );
        assert!(reason(8).contains("missing field `kind`"), "{}", reason(8));
        assert!(reason(9).contains("trailing characters"), "{}", reason(9));
        assert!(
            reason(10).starts_with("request.headers.a: invalid type: integer"),
            "{}",
            reason(10)
        );
        assert!(reason(11).contains("not both"), "{}", reason(11));
        assert!(reason(12).contains("needs a peer"), "{}", reason(12));
        assert!(reason(13).starts_with("duration_ms"), "{}", reason(13));
        // The good lines on either side survive.
        assert_eq!(http(&evs[0]).direction, Direction::Inbound);
        assert_eq!(http(&evs[13]).direction, Direction::Outbound);
        assert_eq!(evs[13].as_ref().unwrap().line, 14);
    }

    #[test]
    fn unknown_fields_warn_once_per_path() {
        let evs = read(concat!(
            r#"{"kind":"http","direction":"inbound","colour":"red","request":{"verb":"GET"},"sent_bytes":3}"#,
            "\n",
            r#"{"kind":"http","direction":"inbound","colour":"blue"}"#,
            "\n",
            r#"{"kind":"tcp","direction":"inbound","route_name":"x"}"#,
        ));
        let w0 = &evs[0].as_ref().unwrap().warnings;
        assert_eq!(w0.len(), 3, "{w0:?}");
        assert!(w0.iter().any(|w| w.contains("\"colour\"")));
        assert!(w0.iter().any(|w| w.contains("\"request.verb\"")), "{w0:?}");
        assert!(w0
            .iter()
            .any(|w| w.contains("\"sent_bytes\" applies to tcp events only")));
        assert!(evs[1].as_ref().unwrap().warnings.is_empty());
        let w2 = &evs[2].as_ref().unwrap().warnings;
        assert_eq!(w2.len(), 1);
        assert!(w2[0].contains("applies to http events only"));
    }

    /// Decodes `lines` as the runner does: each event goes back to the reader (`recycle`)
    /// before the next line is decoded into its buffers.
    fn read_recycling(text: &str) -> Vec<Result<DecodedEvent, LineError>> {
        let mut reader = TrafficReader::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(item) = reader.next() {
            if let Ok(ev) = &item {
                // A copy for the test; the original goes back like the runner's does.
                reader.recycle(ev.event.clone());
            }
            out.push(item);
        }
        out
    }

    /// Every field a "rich" event sets (more headers, trailers, principals, service, peer,
    /// body text, gRPC) next to a minimal one and a reset: decoding one into the other's
    /// recycled buffers must give exactly what a fresh decoder gives — nothing carries over,
    /// in either order.
    #[test]
    fn recycled_events_carry_nothing_over() {
        let rich = r#"{"kind":"http","direction":"gateway","start":"2025-04-20T04:22:24.317Z","duration_ms":156,"request":{"method":"POST","path":"/a?b=1","authority":"Svc.NS:8080","scheme":"https","protocol":"HTTP/2","headers":{"X-User":["jason","ann"],"user-agent":"curl/8.7.1","te":"trailers"},"body":"hello"},"response":{"code":503,"headers":{"x-a":"1","x-b":"2","x-c":"3","x-d":"4"},"body_bytes":7,"grpc_status":14,"flags":"UF,URX","code_details":"upstream_reset"},"peer":{"id":"sidecar~1.2.3.4~p.ns~ns.svc.cluster.local","node":{"NAME":"p","NAMESPACE":"ns"}},"connection":{"id":7,"mtls":true,"peer_principal":"spiffe://a","local_principal":"spiffe://b","source_address":"1.1.1.1:1","destination_address":"2.2.2.2:2","requested_server_name":"sni"},"upstream":{"cluster":"c1","address":"3.3.3.3:3","service":{"name":"s","namespace":"n","host":"h"},"endpoint_metadata":"w;n;c;r;k"},"route_name":"r1","grpc_messages":[{"request":2,"response":3}]}"#;
        let minimal = r#"{"kind":"http","direction":"inbound","start":"2025-04-20T04:22:25Z"}"#;
        let reset = r#"{"kind":"http","direction":"outbound","start":"2025-04-20T04:22:26Z","response":null,"request":{"authority":"a.b","headers":{"x":"y"}}}"#;
        let escaped = r#"{"kind":"http","direction":"outbound","start":"2025-04-20T04:22:27Z","request":{"path":"/\u00e9\"q","headers":{"X-\u0045":"a\\b"}},"response":{"headers":{}}}"#;
        let lines = [rich, minimal, reset, escaped];
        for first in lines {
            for second in lines {
                let evs = read_recycling(&format!("{first}\n{second}\n{first}\n"));
                // A fresh decoder; the blank line keeps the line number (the default
                // `connection.id`) the same.
                let fresh = read(&format!("\n{second}\n"));
                assert_eq!(evs[1], fresh[0], "{second} after {first}");
                let fresh_first = read(first);
                assert_eq!(
                    evs[0].as_ref().map(|e| &e.event),
                    fresh_first[0].as_ref().map(|e| &e.event)
                );
                // Back again: the third line equals the first (apart from its line number).
                let (a, b) = (evs[0].as_ref().unwrap(), evs[2].as_ref().unwrap());
                let (Event::Http(a), Event::Http(b)) = (&a.event, &b.event) else {
                    panic!("not http");
                };
                let mut b = b.clone();
                b.connection.id = a.connection.id;
                assert_eq!(*a, b, "{first} after {second}");
            }
        }
        // Spot checks that the lines really differ where it matters.
        let evs = read_recycling(&format!("{rich}\n{minimal}\n"));
        let m = http(&evs[1]);
        assert_eq!(
            m.request.headers,
            vec![
                (":path".to_string(), "/".to_string()),
                (":method".to_string(), "GET".to_string()),
                (":scheme".to_string(), "http".to_string()),
            ]
        );
        let r = m.response.as_ref().unwrap();
        assert_eq!(r.headers, vec![(":status".to_string(), "200".to_string())]);
        assert!(r.trailers.is_empty() && r.body.is_empty() && m.request.body.is_empty());
        assert_eq!(m.peer, None);
        assert_eq!(m.upstream.service, None);
        assert_eq!(m.connection.peer_principal, None);
        assert_eq!(m.grpc_messages, None);
        let evs = read_recycling(&format!("{rich}\n{escaped}\n"));
        let e = &http(&evs[1]).request.headers;
        assert_eq!(e[0], (":path".to_string(), "/\u{e9}\"q".to_string()));
        assert_eq!(e[3], ("x-e".to_string(), "a\\b".to_string()));
        let rich_ev = http(&evs[0]);
        assert_eq!(rich_ev.request.body, b"hello");
        assert_eq!(rich_ev.response.as_ref().unwrap().body, b"xxxxxxx");
        assert_eq!(
            rich_ev.response.as_ref().unwrap().trailers,
            vec![("grpc-status".to_string(), "14".to_string())]
        );
    }

    /// Past `PEER_CACHE_LIMIT` distinct peers the cache starts over; every line still gets
    /// its own peer (the default id is derived by hand from NAME/NAMESPACE, see
    /// `default_peer_id`), and a peer seen again after the reset decodes the same.
    #[test]
    fn peer_cache_reset_keeps_every_peer_right() {
        let n = PEER_CACHE_LIMIT + 5;
        let mut text = String::new();
        for i in (0..n).chain([0, n - 1]) {
            text.push_str(&format!(
                "{{\"kind\":\"http\",\"direction\":\"inbound\",\"peer\":{{\"node\":{{\"NAME\":\"p{i}\",\"NAMESPACE\":\"ns\"}}}}}}\n"
            ));
        }
        let evs = read_recycling(&text);
        assert_eq!(evs.len(), n + 2);
        for (ev, i) in evs.iter().zip((0..n).chain([0, n - 1])) {
            let peer = http(ev).peer.as_ref().unwrap();
            assert_eq!(
                peer.id,
                format!("sidecar~0.0.0.0~p{i}.ns~ns.svc.cluster.local")
            );
            assert_eq!(
                peer.metadata.get("NAME").and_then(|v| v.as_str()),
                Some(&*format!("p{i}"))
            );
        }
    }

    /// A rejected line between two events leaves the recycled buffers usable.
    #[test]
    fn rejected_line_between_recycled_events() {
        let a = r#"{"kind":"http","direction":"inbound","request":{"headers":{"a":"1","b":"2"}}}"#;
        let bad = r#"{"kind":"http","direction":"inbound","request":{"headers":{"c":"3"},"body":"x","body_bytes":1}}"#;
        let b = r#"{"kind":"http","direction":"inbound","start":"2025-04-20T04:22:25Z"}"#;
        let evs = read_recycling(&format!("{a}\n{bad}\n{b}\n"));
        assert_eq!(
            evs[1],
            Err(LineError {
                line: 2,
                reason: "request: give body_bytes or body, not both".into()
            })
        );
        assert_eq!(evs[2], read(&format!("\n\n{b}"))[0]);
    }

    #[test]
    fn peers_decode_once_and_keep_lenient_reporting() {
        // Lines 1 and 3 repeat one peer text (the cache's hit), line 2 has another; line 4's
        // peer has an unknown key (warned as `peer.nick`, the line still replays), line 5 a
        // wrongly typed id (the line is skipped, the path names it).
        let a = r#""peer":{"id":"a","node":{"NAME":"a-1","LABELS":{"app":"a"}}}"#;
        let b = r#""peer":{"node":{"NAME":"b-1","NAMESPACE":"ns"}}"#;
        let evs = read(&format!(
            "{{\"kind\":\"http\",\"direction\":\"inbound\",{a}}}\n\
             {{\"kind\":\"http\",\"direction\":\"inbound\",{b}}}\n\
             {{\"kind\":\"tcp\",\"direction\":\"inbound\",{a}}}\n\
             {{\"kind\":\"http\",\"direction\":\"inbound\",\"peer\":{{\"id\":\"c\",\"nick\":1}}}}\n\
             {{\"kind\":\"http\",\"direction\":\"inbound\",\"peer\":{{\"id\":5}}}}\n"
        ));
        let pa = http(&evs[0]).peer.clone().expect("peer a");
        assert_eq!(pa.id, "a");
        assert_eq!(pa.metadata["LABELS"]["app"], "a");
        let pb = http(&evs[1]).peer.clone().expect("peer b");
        // No id: the documented default from NAME and NAMESPACE.
        assert_eq!(pb.id, "sidecar~0.0.0.0~b-1.ns~ns.svc.cluster.local");
        assert_eq!(tcp(&evs[2]).peer.as_ref(), Some(&pa));
        let w = &evs[3].as_ref().expect("line 4 replays").warnings;
        assert!(w.iter().any(|w| w.contains("\"peer.nick\"")), "{w:?}");
        assert_eq!(
            http(&evs[3]).peer.as_ref().map(|p| p.id.as_str()),
            Some("c")
        );
        let e = evs[4].as_ref().expect_err("line 5 is skipped");
        assert_eq!(e.line, 5);
        assert!(
            e.reason.starts_with("peer.id: invalid type"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn timed_grpc_batches_stop_and_reload_decode() {
        let evs = read(concat!(
            r#"{"kind":"http","direction":"outbound","duration_ms":4000,"stop_after_ms":1500,"grpc_messages":[{"request":2,"response":1},{"request":3,"response":13,"at_ms":0},{"request":5,"response":14,"at_ms":2000.5}]}"#,
            "\n",
            r#"{"kind":"reload"}"#,
            "\n",
            r#"{"kind":"reload","vm":"same","start":"2025-04-20T04:22:24Z"}"#,
            "\n",
            r#"{"kind":"reload","direction":"inbound","vm":"new"}"#,
        ));
        let ev = evs[0].as_ref().unwrap();
        // The exchange keeps the grand total; the plan holds the untimed part (2/1) from the
        // headers on, then running totals 2+3 / 1+13 at 0 ms and +5 / +14 at 2000.5 ms.
        assert_eq!(http(&evs[0]).grpc_messages, Some((10, 28)));
        assert_eq!(ev.plan.grpc_initial, (2, 1));
        assert_eq!(
            ev.plan.grpc_timeline,
            vec![
                GrpcProgress {
                    at_ns: 0,
                    requests: 5,
                    responses: 14
                },
                GrpcProgress {
                    at_ns: 2_000_500_000,
                    requests: 10,
                    responses: 28
                },
            ]
        );
        assert_eq!(ev.plan.stop_after_ns, Some(1_500_000_000));
        let reload = |i: usize| match &evs[i].as_ref().unwrap().event {
            Event::Reload(r) => *r,
            other => panic!("{other:?}"),
        };
        // `start` defaults to the previous line's + 1 ms, as for events.
        assert_eq!(
            reload(1),
            Reload {
                at_ns: DEFAULT_EPOCH_NS + 1_000_000,
                new_vm: true
            }
        );
        assert_eq!(
            reload(2),
            Reload {
                at_ns: parse_rfc3339("2025-04-20T04:22:24Z").unwrap(),
                new_vm: false
            }
        );
        assert!(reload(3).new_vm);
        assert_eq!(
            evs[3].as_ref().unwrap().warnings,
            vec!["field \"direction\" does not apply to reload lines; ignored (warned once)"]
        );
        // A plain line has the plain plan.
        let plain = read(r#"{"kind":"http","direction":"outbound"}"#);
        assert!(plain[0].as_ref().unwrap().plan.is_plain());
    }

    #[test]
    fn invalid_utf8_and_crlf() {
        let mut input = b"{\"kind\":\"http\",\"direction\":\"inbound\"}\r\n".to_vec();
        input.extend_from_slice(b"\xff\xfe\n");
        let evs: Vec<_> = TrafficReader::new(&input[..]).collect();
        assert!(evs[0].is_ok());
        assert_eq!(evs[1].as_ref().unwrap_err().line, 2);
        assert!(evs[1].as_ref().unwrap_err().reason.starts_with("not UTF-8"));
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("a.b:80"), ("a.b", Some(80)));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(split_host_port("[fd00::1]:8080"), ("[fd00::1]", Some(8080)));
        assert_eq!(split_host_port("fd00::1"), ("fd00::1", None));
    }
}
