//! The per-request resolver: CEL names → Envoy attributes, fetched on first use and memoised.
//!
//! How a name resolves (Envoy 1.21–1.25 `get_property`, abi-host.md §2):
//! 1. `xds.route_name`, `xds.cluster_name`, `xds.cluster_metadata…`, … (Istio 1.16.2+/1.17
//!    configs) map to the old top-level names, the only ones those Envoys expose to Wasm.
//! 2. Known leaves (`request.method`, `response.code`, …) are read with their Envoy type:
//!    strings raw, ints/uints/timestamps/durations 8 bytes LE (timestamps and durations become
//!    CEL ints of nanoseconds: we build without chrono), bools 1 byte.
//! 3. `request.headers`, `response.headers`, `response.trailers` are lazy maps: one header read
//!    per key.
//! 4. `upstream_peer` / `downstream_peer` are read once and decoded once per request
//!    (FlatNode), then exposed as Istio's CEL view ([`super::lazy::PeerVal`]).
//! 5. Attribute roots and known intermediate maps (`request`, `node`, `node.metadata`,
//!    `cluster_metadata.filter_metadata`, …) are lazy path maps: `node.metadata['MESH_ID']`
//!    reads only `node.metadata.MESH_ID`.
//! 6. Any other dotted name under a known root is read as-is and decoded by shape (see
//!    [`decode_dynamic`]).
//! 7. Any other bare identifier `x` reads `property(["x"])`, which Envoy resolves from filter
//!    state `wasm.x` (how `istio_operationId` written by attributegen is seen): bytes become a
//!    CEL string when UTF-8.

use super::lazy::{HeadersVal, PathVal, PeerVal};
use super::leaf_reads::LeafReads;
use crate::host::{AsDynHost, HeaderMap, Host};
use crate::peer::PeerNode;
use crate::values::{self, decode_pairs};
use cel::common::types::{CelBool, CelBytes, CelInt, CelString, CelUInt};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Uint,
    Bool,
}

/// Every typed leaf Envoy 1.21–1.25 exposes (abi-host.md §2.3), as its ABI path (parts joined
/// with NUL, read with [`Host::property_joined`]). Index = memo slot.
const LEAVES: &[(&str, Kind)] = &[
    ("request\0path", Kind::Str),
    ("request\0url_path", Kind::Str),
    ("request\0host", Kind::Str),
    ("request\0scheme", Kind::Str),
    ("request\0method", Kind::Str),
    ("request\0referer", Kind::Str),
    ("request\0useragent", Kind::Str),
    ("request\0id", Kind::Str),
    ("request\0protocol", Kind::Str),
    ("request\0query", Kind::Str),
    ("request\0time", Kind::Int),
    ("request\0duration", Kind::Int),
    ("request\0size", Kind::Int),
    ("request\0total_size", Kind::Int),
    ("response\0code", Kind::Int),
    ("response\0code_details", Kind::Str),
    ("response\0flags", Kind::Int),
    ("response\0grpc_status", Kind::Int),
    ("response\0size", Kind::Int),
    ("response\0total_size", Kind::Int),
    ("connection\0id", Kind::Uint),
    ("connection\0mtls", Kind::Bool),
    ("connection\0requested_server_name", Kind::Str),
    ("connection\0tls_version", Kind::Str),
    ("connection\0subject_local_certificate", Kind::Str),
    ("connection\0subject_peer_certificate", Kind::Str),
    ("connection\0uri_san_local_certificate", Kind::Str),
    ("connection\0uri_san_peer_certificate", Kind::Str),
    ("connection\0dns_san_local_certificate", Kind::Str),
    ("connection\0dns_san_peer_certificate", Kind::Str),
    ("connection\0sha256_peer_certificate_digest", Kind::Str),
    ("connection\0termination_details", Kind::Str),
    ("source\0address", Kind::Str),
    ("source\0port", Kind::Int),
    ("destination\0address", Kind::Str),
    ("destination\0port", Kind::Int),
    ("upstream\0address", Kind::Str),
    ("upstream\0port", Kind::Int),
    ("upstream\0local_address", Kind::Str),
    ("upstream\0transport_failure_reason", Kind::Str),
    ("upstream\0tls_version", Kind::Str),
    ("upstream\0subject_local_certificate", Kind::Str),
    ("upstream\0subject_peer_certificate", Kind::Str),
    ("upstream\0uri_san_local_certificate", Kind::Str),
    ("upstream\0uri_san_peer_certificate", Kind::Str),
    ("upstream\0dns_san_local_certificate", Kind::Str),
    ("upstream\0dns_san_peer_certificate", Kind::Str),
    ("upstream\0sha256_peer_certificate_digest", Kind::Str),
    ("node\0id", Kind::Str),
    ("node\0cluster", Kind::Str),
    ("cluster_name", Kind::Str),
    ("route_name", Kind::Str),
    ("listener_direction", Kind::Int),
    ("plugin_name", Kind::Str),
    ("plugin_root_id", Kind::Str),
    ("plugin_vm_id", Kind::Str),
    ("connection_id", Kind::Uint),
];

/// Top-level names that are attribute trees (Envoy's Wasm `PROPERTY_TOKENS` that have children).
const ROOTS: &[&str] = &[
    "request",
    "response",
    "connection",
    "source",
    "destination",
    "upstream",
    "node",
    "metadata",
    "filter_state",
    "cluster_metadata",
    "route_metadata",
    "upstream_host_metadata",
    "listener_metadata",
    "xds",
];

/// Roots holding an `envoy.config.core.v3.Metadata` (`filter_metadata.<ns>.<key>`).
const METADATA_ROOTS: &[&str] = &[
    "metadata",
    "cluster_metadata",
    "route_metadata",
    "upstream_host_metadata",
    "listener_metadata",
];

/// Names CEL itself resolves (type identifiers): never sent to the host.
const CEL_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "optional",
    "optional_type",
];

/// `xds.X…` → the pre-1.29 top-level name Envoy 1.21–1.25 answers to.
fn unalias<'s, 'a>(segs: &'s [&'a str]) -> &'s [&'a str] {
    match segs {
        ["xds", first, ..]
            if matches!(
                *first,
                "route_name"
                    | "cluster_name"
                    | "cluster_metadata"
                    | "route_metadata"
                    | "upstream_host_metadata"
                    | "listener_metadata"
                    | "listener_direction"
                    | "node"
            ) =>
        {
            &segs[1..]
        }
        _ => segs,
    }
}

/// Index of `segs` in [`LEAVES`]: a `match` on the segments (the compiler turns it into length
/// and byte compares) instead of a scan of the table; `leaf_index_matches_the_table` keeps the
/// two in step.
fn leaf_index(segs: &[&str]) -> Option<usize> {
    Some(match segs {
        ["cluster_name"] => 50,
        ["route_name"] => 51,
        ["listener_direction"] => 52,
        ["plugin_name"] => 53,
        ["plugin_root_id"] => 54,
        ["plugin_vm_id"] => 55,
        ["connection_id"] => 56,
        ["request", second] => match *second {
            "path" => 0,
            "url_path" => 1,
            "host" => 2,
            "scheme" => 3,
            "method" => 4,
            "referer" => 5,
            "useragent" => 6,
            "id" => 7,
            "protocol" => 8,
            "query" => 9,
            "time" => 10,
            "duration" => 11,
            "size" => 12,
            "total_size" => 13,
            _ => return None,
        },
        ["response", second] => match *second {
            "code" => 14,
            "code_details" => 15,
            "flags" => 16,
            "grpc_status" => 17,
            "size" => 18,
            "total_size" => 19,
            _ => return None,
        },
        ["connection", second] => match *second {
            "id" => 20,
            "mtls" => 21,
            "requested_server_name" => 22,
            "tls_version" => 23,
            "subject_local_certificate" => 24,
            "subject_peer_certificate" => 25,
            "uri_san_local_certificate" => 26,
            "uri_san_peer_certificate" => 27,
            "dns_san_local_certificate" => 28,
            "dns_san_peer_certificate" => 29,
            "sha256_peer_certificate_digest" => 30,
            "termination_details" => 31,
            _ => return None,
        },
        ["source", second] => match *second {
            "address" => 32,
            "port" => 33,
            _ => return None,
        },
        ["destination", second] => match *second {
            "address" => 34,
            "port" => 35,
            _ => return None,
        },
        ["upstream", second] => match *second {
            "address" => 36,
            "port" => 37,
            "local_address" => 38,
            "transport_failure_reason" => 39,
            "tls_version" => 40,
            "subject_local_certificate" => 41,
            "subject_peer_certificate" => 42,
            "uri_san_local_certificate" => 43,
            "uri_san_peer_certificate" => 44,
            "dns_san_local_certificate" => 45,
            "dns_san_peer_certificate" => 46,
            "sha256_peer_certificate_digest" => 47,
            _ => return None,
        },
        ["node", second] => match *second {
            "id" => 48,
            "cluster" => 49,
            _ => return None,
        },
        _ => return None,
    })
}

/// Whether a bare identifier reaches Envoy as a filter-state read (`wasm.<name>`): the names
/// [`Attributes::lookup_path`] sends to [`Attributes::dynamic`] as a single segment.
pub(crate) fn is_filter_state_name(name: &str) -> bool {
    let segs = [name];
    !name.is_empty()
        && !name.contains('.')
        && leaf_index(&segs).is_none()
        && !matches!(name, "upstream_peer" | "downstream_peer")
        && !is_lazy_map(&segs)
        && !CEL_NAMES.contains(&name)
}

/// Index in [`LEAVES`] of a dotted attribute name given as segments (after `xds.` aliases).
pub(crate) fn leaf_of(segs: &[&str]) -> Option<usize> {
    leaf_index(unalias(segs))
}

/// A name below which the tree continues and which is cheaper to read per key than whole.
fn is_lazy_map(segs: &[&str]) -> bool {
    match segs {
        [root] => ROOTS.contains(root),
        ["node", "metadata"] => true,
        ["node", "metadata", "LABELS" | "PLATFORM_METADATA" | "ANNOTATIONS"] => true,
        // <metadata root>.filter_metadata and <metadata root>.filter_metadata.<namespace>
        [root, "filter_metadata"] | [root, "filter_metadata", _] => METADATA_ROOTS.contains(root),
        _ => false,
    }
}

/// A leaf's value in Envoy's type, decoded once per request. The direct evaluator
/// ([`super::fast`]) compares these in place; the interpreter gets a `dyn Val` built from it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Int(i64),
    Uint(u64),
    Bool(bool),
}

/// Reads and decodes leaf `i` of [`LEAVES`] (`None`: absent, undecodable, or no such leaf).
pub(super) fn read_leaf(host: &dyn Host, i: usize) -> Option<Scalar> {
    let (name, kind) = LEAVES.get(i)?;
    // The table holds the ABI path itself (parts joined with NUL).
    Scalar::decode(host.property_joined(name)?, *kind)
}

/// A leaf's value as the direct evaluator sees it: borrowed from a [`Scalar`] or, for
/// [`LeafReads`], straight from the host's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeafVal<'a> {
    Str(&'a str),
    Int(i64),
    Uint(u64),
    Bool(bool),
}

/// Leaf `i`'s ABI path (parts joined with NUL) and how its bytes decode.
pub(super) fn leaf_def(i: usize) -> Option<(&'static str, Kind)> {
    LEAVES.get(i).copied()
}

impl Kind {
    /// `bytes` as this kind, borrowed; `None` where the value is not one (a wrong width) or, for
    /// strings, not UTF-8 (the lossy text is [`Scalar::decode`]'s job).
    #[inline(always)]
    pub(super) fn view(self, bytes: &[u8]) -> Option<LeafVal<'_>> {
        Some(match self {
            Kind::Str => LeafVal::Str(crate::bytes::as_str(bytes).ok()?),
            Kind::Int => LeafVal::Int(values::as_i64(bytes)?),
            Kind::Uint => LeafVal::Uint(values::as_u64(bytes)?),
            Kind::Bool => LeafVal::Bool(values::as_bool(bytes)?),
        })
    }
}

impl Scalar {
    pub(crate) fn view(&self) -> LeafVal<'_> {
        match self {
            Scalar::Str(s) => LeafVal::Str(s),
            Scalar::Int(i) => LeafVal::Int(*i),
            Scalar::Uint(u) => LeafVal::Uint(*u),
            Scalar::Bool(b) => LeafVal::Bool(*b),
        }
    }

    pub(super) fn decode(bytes: Vec<u8>, kind: Kind) -> Option<Scalar> {
        Some(match kind {
            // Lossy like the interpreter's view always was; valid UTF-8 keeps the buffer.
            Kind::Str => Scalar::Str(crate::bytes::into_string_lossy(bytes)),
            Kind::Int => Scalar::Int(values::as_i64(&bytes)?),
            Kind::Uint => Scalar::Uint(values::as_u64(&bytes)?),
            Kind::Bool => Scalar::Bool(values::as_bool(&bytes)?),
        })
    }

    fn to_val(&self) -> Box<dyn Val> {
        match self {
            Scalar::Str(s) => Box::new(CelString::from(s.clone())),
            Scalar::Int(i) => Box::new(CelInt::from(*i)),
            Scalar::Uint(u) => Box::new(CelUInt::from(*u)),
            Scalar::Bool(b) => Box::new(CelBool::from(*b)),
        }
    }

    pub(crate) fn to_value(&self) -> cel::Value {
        match self {
            Scalar::Str(s) => cel::Value::String(Arc::new(s.clone())),
            Scalar::Int(i) => cel::Value::Int(*i),
            Scalar::Uint(u) => cel::Value::UInt(*u),
            Scalar::Bool(b) => cel::Value::Bool(*b),
        }
    }
}

/// Depth limit when decoding nested pairs maps by shape.
const MAX_NESTING: usize = 8;

/// A value of unknown type, decoded by shape: bytes that hold a NUL and parse as a pairs map are
/// a map (Envoy serialises Struct/map values that way; a real string practically never starts
/// with a little-endian u32 count followed by consistent sizes), valid UTF-8 is a string,
/// anything else bytes.
///
/// Lists: Envoy's `serializeValue` writes a CEL list as pairs whose keys are the serialised
/// elements and whose values are all empty (a protobuf `ListValue` inside a `Struct`, e.g.
/// `cluster_metadata.filter_metadata.istio.services`, arrives that way). The bytes alone cannot
/// tell such a list from a Struct whose every field is the empty string, so the rule is: a
/// non-empty pairs value whose **every value is empty** is a list of its decoded keys. The rare
/// all-empty-strings Struct then reads as the list of its field names (`'f' in x` still holds;
/// `x['f']` fails instead of giving `''`). Known limit: a Struct number (8-byte double) reads as
/// bytes or a string.
pub(crate) fn decode_dynamic(bytes: &[u8]) -> cel::Value {
    decode_dynamic_at(bytes, 0)
}

fn decode_dynamic_at(bytes: &[u8], depth: usize) -> cel::Value {
    if depth < MAX_NESTING && bytes.contains(&0) {
        if let Some(pairs) = decode_pairs(bytes) {
            if !pairs.is_empty() {
                if pairs.iter().all(|(_, v)| v.is_empty()) {
                    let items: Vec<cel::Value> = pairs
                        .into_iter()
                        .map(|(k, _)| decode_dynamic_at(k, depth + 1))
                        .collect();
                    return cel::Value::List(std::sync::Arc::new(items));
                }
                let map: std::collections::HashMap<String, cel::Value> = pairs
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(k).into_owned(),
                            decode_dynamic_at(v, depth + 1),
                        )
                    })
                    .collect();
                return cel::Value::from(map);
            }
        }
    }
    match crate::bytes::as_str(bytes) {
        Ok(s) => cel::Value::String(std::sync::Arc::new(s.to_string())),
        Err(_) => cel::Value::Bytes(std::sync::Arc::new(bytes.to_vec())),
    }
}

fn dynamic_val(bytes: &[u8]) -> Option<Box<dyn Val>> {
    if let Ok(s) = crate::bytes::as_str(bytes) {
        if !bytes.contains(&0) {
            return Some(Box::new(CelString::from(s.to_string())));
        }
    }
    let v = decode_dynamic(bytes);
    match Box::<dyn Val>::try_from(v) {
        Ok(b) => Some(b),
        Err(_) => Some(Box::new(CelBytes::from(bytes.to_vec()))),
    }
}

type Memo<T> = Mutex<Vec<(T, Option<Box<dyn Val>>)>>;

/// A leaf's memo: the decoded value, and the interpreter's `dyn Val` of it (built on demand).
struct LeafSlot {
    scalar: OnceLock<Option<Scalar>>,
    val: OnceLock<Option<Box<dyn Val>>>,
}

impl LeafSlot {
    const fn new() -> Self {
        LeafSlot {
            scalar: OnceLock::new(),
            val: OnceLock::new(),
        }
    }
}

/// Memo slots handed out in order of first use: a request reads a handful of leaves, so a
/// slot per entry of [`LEAVES`] (2 KB to allocate and zero per request) would be mostly waste.
const FEW_SLOTS: usize = 4;
/// `leaf_ix` value of a leaf memoised in the full table (after [`FEW_SLOTS`] were used).
const IN_FULL_TABLE: u8 = u8::MAX;

/// One request's (or one callback's) view of Envoy for CEL. Create it per callback, evaluate any
/// number of expressions against it: each attribute is read at most once, the peer FlatNode
/// decoded at most once.
pub struct Attributes<'h> {
    host: &'h dyn Host,
    /// Per entry of [`LEAVES`]: 0 = not read yet, k = slot k-1 of `few`, or [`IN_FULL_TABLE`].
    /// Atomics only to stay `Sync` (the CEL resolver must be); a request is one thread.
    leaf_ix: [AtomicU8; LEAVES.len()],
    few_used: AtomicU8,
    /// Inline: most requests read 1–4 leaves, and a boxed table cost an allocation per request.
    few: [LeafSlot; FEW_SLOTS],
    full: OnceLock<Box<[LeafSlot; LEAVES.len()]>>,
    upstream_peer: OnceLock<Option<Arc<PeerNode>>>,
    downstream_peer: OnceLock<Option<Arc<PeerNode>>>,
    dynamic: Memo<Vec<String>>,
    headers: Mutex<Vec<(HeaderMap, String, Option<String>)>>,
}

impl<'h> Attributes<'h> {
    pub fn new(host: &'h dyn Host) -> Self {
        Attributes {
            host,
            leaf_ix: [const { AtomicU8::new(0) }; LEAVES.len()],
            few_used: AtomicU8::new(0),
            few: [const { LeafSlot::new() }; FEW_SLOTS],
            full: OnceLock::new(),
            upstream_peer: OnceLock::new(),
            downstream_peer: OnceLock::new(),
            dynamic: Mutex::new(Vec::new()),
            headers: Mutex::new(Vec::new()),
        }
    }

    pub fn host(&self) -> &'h dyn Host {
        self.host
    }

    /// Supplies `wasm.upstream_peer` already decoded (`None`: absent or malformed), so that
    /// `upstream_peer.*` neither reads nor decodes the FlatNode again. The caller vouches that it
    /// is what `property(["upstream_peer"])` would decode to now (e.g. a node cached by the
    /// `upstream_peer_id` read in the same callback). No effect once the peer was read.
    pub fn provide_upstream_peer(&self, node: Option<Arc<PeerNode>>) {
        let _ = self.upstream_peer.set(node);
    }

    /// [`Attributes::provide_upstream_peer`] for `wasm.downstream_peer`.
    pub fn provide_downstream_peer(&self, node: Option<Arc<PeerNode>>) {
        let _ = self.downstream_peer.set(node);
    }

    /// `wasm.upstream_peer` decoded (memoised; `None` if absent or malformed).
    pub fn upstream_peer(&self) -> Option<&PeerNode> {
        self.upstream_peer
            .get_or_init(|| {
                PeerNode::from_flatbuffer(&self.host.property(&["upstream_peer"])?).map(Arc::new)
            })
            .as_deref()
    }

    /// `wasm.downstream_peer` decoded (memoised; `None` if absent or malformed).
    pub fn downstream_peer(&self) -> Option<&PeerNode> {
        self.downstream_peer
            .get_or_init(|| {
                PeerNode::from_flatbuffer(&self.host.property(&["downstream_peer"])?).map(Arc::new)
            })
            .as_deref()
    }

    /// A header value, memoised per (map, lower-cased name).
    pub fn header(&self, map: HeaderMap, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        if let Ok(memo) = self.headers.lock() {
            if let Some((_, _, v)) = memo.iter().find(|(m, n, _)| *m == map && *n == name) {
                return v.clone();
            }
        }
        let v = self.host.header(map, &name);
        if let Ok(mut memo) = self.headers.lock() {
            memo.push((map, name, v.clone()));
        }
        v
    }

    fn slot(&self, i: usize) -> Option<&LeafSlot> {
        let ix = self.leaf_ix.get(i)?;
        let mut k = ix.load(Ordering::Relaxed);
        if k == 0 {
            let n = self.few_used.fetch_add(1, Ordering::Relaxed);
            k = if (n as usize) < FEW_SLOTS {
                n + 1
            } else {
                self.few_used.store(FEW_SLOTS as u8, Ordering::Relaxed);
                IN_FULL_TABLE
            };
            ix.store(k, Ordering::Relaxed);
        }
        if k == IN_FULL_TABLE {
            return self
                .full
                .get_or_init(|| Box::new([const { LeafSlot::new() }; LEAVES.len()]))
                .get(i);
        }
        self.few.get(k as usize - 1)
    }

    /// Leaf `i` of [`LEAVES`] (index from [`leaf_index`]), read and decoded on first use.
    pub(crate) fn leaf_scalar(&self, i: usize) -> Option<&Scalar> {
        self.slot(i)?
            .scalar
            .get_or_init(|| read_leaf(self.host, i))
            .as_ref()
    }

    /// A resolver that starts with the leaves `reads` holds (see [`LeafReads`]).
    pub fn from_reads<H: Host + AsDynHost + ?Sized>(reads: &LeafReads<'h, H>) -> Self {
        let attrs = Attributes::new(reads.host());
        for (i, value) in reads.read() {
            if let Some(slot) = attrs.slot(i) {
                let _ = slot.scalar.set(value);
            }
        }
        attrs
    }

    fn leaf(&self, i: usize) -> Option<&dyn Val> {
        let scalar = self.leaf_scalar(i)?;
        self.slot(i)?
            .val
            .get_or_init(|| Some(scalar.to_val()))
            .as_deref()
    }

    /// A bare identifier that is none of Envoy's names: `property([name])`, which Envoy answers
    /// from filter state `wasm.<name>` (how attributegen's `istio_operationId` is read). Same
    /// value as the interpreter's view of it ([`Attributes::lookup_path`]), without the memo:
    /// callers read it once per evaluation. `None`: absent.
    pub(crate) fn filter_state_value(
        &self,
        name: &str,
    ) -> Option<Result<cel::Value, cel::ExecutionError>> {
        let Some(bytes) = self.host.property_joined(name) else {
            // Remember the miss: the interpreter, which reports it, then does not read again.
            if let Ok(mut memo) = self.dynamic.lock() {
                memo.push((vec![name.to_string()], None));
            }
            return None;
        };
        let v = if bytes.contains(&0) {
            dynamic_val(&bytes)?
        } else {
            match crate::bytes::into_string(bytes) {
                // The common case (a UTF-8 label): the buffer becomes the string, no copy.
                Ok(s) => return Some(Ok(cel::Value::String(Arc::new(s)))),
                Err(e) => dynamic_val(e.as_bytes())?,
            }
        };
        Some(cel::Value::try_from(&*v))
    }

    fn dynamic(&self, segs: &[&str]) -> Option<Box<dyn Val>> {
        if let Ok(memo) = self.dynamic.lock() {
            if let Some((_, v)) = memo.iter().find(|(n, _)| n.iter().eq(segs.iter())) {
                return v.as_ref().map(|b| b.clone_as_boxed());
            }
        }
        let v = self.host.property(segs).and_then(|b| dynamic_val(&b));
        let out = v.as_ref().map(|b| b.clone_as_boxed());
        if let Ok(mut memo) = self.dynamic.lock() {
            memo.push((segs.iter().map(|s| s.to_string()).collect(), v));
        }
        out
    }

    /// Number of entries of the map at `path` (reads the whole map once).
    pub(super) fn map_size(&self, path: &[&str]) -> i64 {
        self.host
            .property(path)
            .and_then(|b| decode_pairs(&b).map(|p| p.len() as i64))
            .unwrap_or(0)
    }

    /// Resolves a dotted CEL name (`request.method`); see [`Attributes::lookup_path`].
    pub(super) fn lookup<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        // Names are short select chains: split onto the stack, fall back to the heap if long.
        let mut buf = [""; 8];
        let mut n = 0;
        for seg in name.split('.') {
            match buf.get_mut(n) {
                Some(slot) => *slot = seg,
                None => {
                    let segs: Vec<&str> = name.split('.').collect();
                    return self.lookup_path(&segs);
                }
            }
            n += 1;
        }
        self.lookup_path(&buf[..n])
    }

    /// Resolves an attribute path given as segments (a map key may contain dots, e.g.
    /// `node.metadata.LABELS['service.istio.io/canonical-name']`); `None` = not available (the
    /// interpreter then tries shorter prefixes, and finally reports the reference undeclared /
    /// the key missing).
    pub(super) fn lookup_path<'b>(&'b self, segs: &[&str]) -> Option<CowVal<'b, 'b>> {
        let segs = unalias(segs);
        if let Some(i) = leaf_index(segs) {
            return self.leaf(i).map(CowVal::Borrowed);
        }
        let headers = |map: HeaderMap, path: &'static [&'static str]| match segs.get(2) {
            None => Some(CowVal::owned(HeadersVal {
                attrs: self,
                map,
                path,
                keys: OnceLock::new(),
            })),
            Some(key) if segs.len() == 3 => self
                .header(map, key)
                .map(|v| CowVal::owned(CelString::from(v))),
            Some(_) => None,
        };
        match segs {
            ["request", "headers", ..] => {
                return headers(HeaderMap::RequestHeaders, &["request", "headers"])
            }
            ["response", "headers", ..] => {
                return headers(HeaderMap::ResponseHeaders, &["response", "headers"])
            }
            ["response", "trailers", ..] => {
                return headers(HeaderMap::ResponseTrailers, &["response", "trailers"])
            }
            ["upstream_peer"] => {
                return self
                    .upstream_peer()
                    .map(|node| CowVal::owned(PeerVal { node }))
            }
            ["downstream_peer"] => {
                return self
                    .downstream_peer()
                    .map(|node| CowVal::owned(PeerVal { node }))
            }
            // `upstream_peer.istio_version` answered in one step: otherwise the interpreter
            // first asks for the whole name, misses, probes its type registry, then asks for
            // `upstream_peer` and selects. A missing field stays a miss (same error then).
            ["upstream_peer", key] => {
                return self
                    .upstream_peer()
                    .and_then(|node| PeerVal { node }.field(key))
                    .map(CowVal::Owned)
            }
            ["downstream_peer", key] => {
                return self
                    .downstream_peer()
                    .and_then(|node| PeerVal { node }.field(key))
                    .map(CowVal::Owned)
            }
            _ => {}
        }
        if is_lazy_map(segs) {
            return Some(CowVal::owned(PathVal {
                attrs: self,
                path: segs.iter().map(|s| s.to_string()).collect(),
                keys: OnceLock::new(),
            }));
        }
        match segs {
            [] => None,
            [name] if CEL_NAMES.contains(name) => None,
            [_] => self.dynamic(segs).map(CowVal::Owned),
            [root, ..] if ROOTS.contains(root) => self.dynamic(segs).map(CowVal::Owned),
            _ => None,
        }
    }
}

impl VariableResolver for Attributes<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.lookup(variable)
    }
}

#[cfg(test)]
mod leaf_tests {
    use super::*;

    #[test]
    fn leaf_index_matches_the_table() {
        for (i, (name, _)) in LEAVES.iter().enumerate() {
            let segs: Vec<&str> = name.split('\0').collect();
            assert!(segs.len() <= 2, "{name}: leaf() reads one or two segments");
            assert_eq!(leaf_index(&segs), Some(i), "{name}");
        }
        for miss in [
            &["request"][..],
            &["request", "headers"],
            &["request", "method", "x"],
            &["node", "metadata"],
            &["upstream_peer"],
            &["method"],
            &[],
        ] {
            assert_eq!(leaf_index(miss), None, "{miss:?}");
        }
    }
}
