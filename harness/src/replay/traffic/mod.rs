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
//!
//! Modules: this one holds the public types, the reader and the decoder's fast path (strict
//! shape → lenient fallback); `shapes` the two wire shapes of a line; `values` the custom
//! deserialisers they use; `fill` writing a decoded line into a (recycled) exchange or a TCP
//! connection, with the defaults; `timing` durations and the in-stream timing plan;
//! `reload` the `{"kind":"reload"}` line; `errors` naming the field at fault.

mod errors;
mod fill;
mod reload;
mod shapes;
mod timing;
mod values;

use std::collections::HashSet;
use std::fmt;
use std::io::BufRead;

use serde::Deserialize;

use self::errors::{error_with_path, strip_position};
use self::fill::trim_body;
use self::reload::{probe_kind, RELOAD};
use self::shapes::{lenient, strict, RawLine};
use super::time::{parse_rfc3339, DEFAULT_EPOCH_NS};
use crate::stream::{Direction, HttpExchange, HttpPlan, Peer, Reload, TcpConnection};

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

#[cfg(test)]
mod tests;
