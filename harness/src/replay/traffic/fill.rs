//! Writing a decoded line into the event model: into a recycled exchange's strings, header
//! vectors and buffers without reallocating, and the defaults the contract leaves to the
//! replayer (clusters, peer ids, ports from authorities).

use std::fmt::Write as _;

use serde_json::{Map, Value as Json};

use super::values::{RawDirection, Str};
use crate::stream::{Direction, Peer};

pub(super) fn direction(d: RawDirection) -> Direction {
    match d {
        RawDirection::Inbound => Direction::Inbound,
        RawDirection::Outbound => Direction::Outbound,
        RawDirection::Gateway => Direction::Gateway,
    }
}

/// Splits `host:port` / `[v6]:port` / `host`; the port is None when absent or not a number.
pub(super) fn split_host_port(authority: &str) -> (&str, Option<u16>) {
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

pub(super) fn scheme_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

/// Where a message body comes from.
pub(super) enum Body<'t> {
    Empty,
    /// `body_bytes`: that many filler bytes.
    Filler(usize),
    /// `body`: the text.
    Text(&'t str),
}

pub(super) fn body<'t>(
    bytes: Option<u64>,
    text: &'t Option<Str>,
    what: &str,
) -> Result<Body<'t>, String> {
    match (bytes, text) {
        (Some(_), Some(_)) => Err(format!("{what}: give body_bytes or body, not both")),
        (None, Some(t)) => Ok(Body::Text(t.as_str())),
        (Some(n), None) if n > 1 << 30 => Err(format!("{what}.body_bytes: {n} is over 1 GiB")),
        (Some(n), None) => Ok(Body::Filler(n as usize)),
        (None, None) => Ok(Body::Empty),
    }
}

/// Writes a body into a (possibly recycled) buffer.
pub(super) fn fill_body(dst: &mut Vec<u8>, src: Body) {
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

pub(super) fn trim_body(body: &mut Vec<u8>) {
    if body.capacity() > BODY_KEEP_MAX_BYTES {
        *body = Vec::new();
    }
}

/// `dst = src`, keeping `dst`'s allocation.
pub(super) fn fill(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

/// `dst = src.map(to_owned)`, keeping `dst`'s allocation when both are set.
pub(super) fn fill_opt(dst: &mut Option<String>, src: Option<&Str>) {
    match (src, dst) {
        (None, dst) => *dst = None,
        (Some(s), Some(d)) => fill(d, s.as_str()),
        (Some(s), dst) => *dst = Some(s.as_str().to_owned()),
    }
}

pub(super) fn opt_str<'s>(s: &'s Option<Str>, default: &'s str) -> &'s str {
    s.as_ref().map_or(default, Str::as_str)
}

/// `dst = src.cloned()`, keeping `dst`'s id allocation.
pub(super) fn fill_peer(dst: &mut Option<Peer>, src: Option<&Peer>) {
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
pub(super) struct HeaderFill<'v> {
    v: &'v mut Vec<(String, String)>,
    n: usize,
}

impl<'v> HeaderFill<'v> {
    pub(super) fn new(v: &'v mut Vec<(String, String)>) -> Self {
        Self { v, n: 0 }
    }

    /// Appends `name` and returns its value, empty, to be written.
    pub(super) fn entry(&mut self, name: &str) -> &mut String {
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

    pub(super) fn push(&mut self, name: &str, value: &str) {
        self.entry(name).push_str(value);
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.v.iter().take(self.n).any(|(k, _)| k == name)
    }

    pub(super) fn finish(self) {
        self.v.truncate(self.n);
    }
}

/// The Envoy node id an Istio sidecar of this metadata would carry.
pub(super) fn default_peer_id(node: &Map<String, Json>) -> String {
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

pub(super) fn inbound_cluster(dst: &mut String, port: u16) {
    let _ = write!(dst, "inbound|{port}||");
}
