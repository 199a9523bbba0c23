//! The `Wasm.Common.FlatNode` FlatBuffer, read and written by hand (no flatc in the build).
//!
//! Field ids follow `node_info.fbs` in declaration order (vtable slot = 4 + 2 × id):
//! name 0, namespace 1, labels 2, owner 3, workload_name 4, platform_metadata 5,
//! istio_version 6, mesh_id 7, app_containers 8, cluster_id 9, instance_ips 10 (1.14+).
//! `KeyVal { key 0, value 1 }`. Later fields (e.g. `identity`) are ignored by the reader.
//!
//! Reads happen only after `flatbuffers::root` has verified every field we touch, which is what
//! makes the `unsafe` accessors below sound (the same contract flatc-generated code relies on).

use super::{sort_entries, PeerNode, MAX_ENTRIES, MAX_FLATBUFFER_BYTES};
use flatbuffers::{
    FlatBufferBuilder, Follow, ForwardsUOffset, InvalidFlatbuffer, Table, Vector, Verifiable,
    Verifier, VerifierOptions, WIPOffset,
};

const NAME: u16 = 4;
const NAMESPACE: u16 = 6;
const LABELS: u16 = 8;
const OWNER: u16 = 10;
const WORKLOAD_NAME: u16 = 12;
const PLATFORM_METADATA: u16 = 14;
const ISTIO_VERSION: u16 = 16;
const MESH_ID: u16 = 18;
const APP_CONTAINERS: u16 = 20;
const CLUSTER_ID: u16 = 22;
const INSTANCE_IPS: u16 = 24;
const KV_KEY: u16 = 4;
const KV_VALUE: u16 = 6;

type StrVec<'a> = Vector<'a, ForwardsUOffset<&'a str>>;
type KvVec<'a> = Vector<'a, ForwardsUOffset<KeyVal<'a>>>;

#[derive(Clone, Copy)]
struct KeyVal<'a> {
    tab: Table<'a>,
}

impl<'a> Follow<'a> for KeyVal<'a> {
    type Inner = KeyVal<'a>;
    unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
        // SAFETY: forwarded contract of `Follow::follow` (loc verified by the caller).
        KeyVal {
            tab: unsafe { Table::new(buf, loc) },
        }
    }
}

impl Verifiable for KeyVal<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<&str>>("key", KV_KEY, false)?
            .visit_field::<ForwardsUOffset<&str>>("value", KV_VALUE, false)?
            .finish();
        Ok(())
    }
}

impl<'a> KeyVal<'a> {
    fn string(&self, slot: u16) -> &'a str {
        // SAFETY: the table was verified, including this string slot.
        unsafe { self.tab.get::<ForwardsUOffset<&str>>(slot, None) }.unwrap_or("")
    }
}

#[derive(Clone, Copy)]
struct FlatNode<'a> {
    tab: Table<'a>,
}

impl<'a> Follow<'a> for FlatNode<'a> {
    type Inner = FlatNode<'a>;
    unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
        // SAFETY: forwarded contract of `Follow::follow` (loc verified by the caller).
        FlatNode {
            tab: unsafe { Table::new(buf, loc) },
        }
    }
}

impl Verifiable for FlatNode<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<&str>>("name", NAME, false)?
            .visit_field::<ForwardsUOffset<&str>>("namespace", NAMESPACE, false)?
            .visit_field::<ForwardsUOffset<KvVec>>("labels", LABELS, false)?
            .visit_field::<ForwardsUOffset<&str>>("owner", OWNER, false)?
            .visit_field::<ForwardsUOffset<&str>>("workload_name", WORKLOAD_NAME, false)?
            .visit_field::<ForwardsUOffset<KvVec>>("platform_metadata", PLATFORM_METADATA, false)?
            .visit_field::<ForwardsUOffset<&str>>("istio_version", ISTIO_VERSION, false)?
            .visit_field::<ForwardsUOffset<&str>>("mesh_id", MESH_ID, false)?
            .visit_field::<ForwardsUOffset<StrVec>>("app_containers", APP_CONTAINERS, false)?
            .visit_field::<ForwardsUOffset<&str>>("cluster_id", CLUSTER_ID, false)?
            .visit_field::<ForwardsUOffset<StrVec>>("instance_ips", INSTANCE_IPS, false)?
            .finish();
        Ok(())
    }
}

impl<'a> FlatNode<'a> {
    fn string(&self, slot: u16) -> String {
        // SAFETY: verified above.
        unsafe { self.tab.get::<ForwardsUOffset<&str>>(slot, None) }
            .unwrap_or("")
            .to_string()
    }

    fn entries(&self, slot: u16) -> Option<Vec<(String, String)>> {
        // SAFETY: verified above.
        let v = unsafe { self.tab.get::<ForwardsUOffset<KvVec<'a>>>(slot, None) }?;
        Some(
            v.iter()
                .take(MAX_ENTRIES)
                .map(|kv| {
                    (
                        kv.string(KV_KEY).to_string(),
                        kv.string(KV_VALUE).to_string(),
                    )
                })
                .collect(),
        )
    }

    fn strings(&self, slot: u16) -> Vec<String> {
        // SAFETY: verified above.
        match unsafe { self.tab.get::<ForwardsUOffset<StrVec<'a>>>(slot, None) } {
            Some(v) => v.iter().take(MAX_ENTRIES).map(str::to_string).collect(),
            None => Vec::new(),
        }
    }
}

fn verifier_options() -> VerifierOptions {
    VerifierOptions {
        max_depth: 8,
        max_tables: 2 * MAX_ENTRIES + 8,
        max_apparent_size: 4 * MAX_FLATBUFFER_BYTES,
        ignore_missing_null_terminator: false,
    }
}

pub(super) fn decode(bytes: &[u8]) -> Option<PeerNode> {
    if bytes.len() > MAX_FLATBUFFER_BYTES {
        return None;
    }
    let node = flatbuffers::root_with_opts::<FlatNode>(&verifier_options(), bytes).ok()?;
    Some(PeerNode {
        name: node.string(NAME),
        namespace: node.string(NAMESPACE),
        // Vectors built by Istio are sorted already; re-sorting keeps `PeerNode::label`'s binary
        // search correct on hand-made (unsorted) buffers too.
        labels: node.entries(LABELS).map(sort_entries),
        owner: node.string(OWNER),
        workload_name: node.string(WORKLOAD_NAME),
        platform_metadata: node
            .entries(PLATFORM_METADATA)
            .map(sort_entries)
            .unwrap_or_default(),
        istio_version: node.string(ISTIO_VERSION),
        mesh_id: node.string(MESH_ID),
        app_containers: node.strings(APP_CONTAINERS),
        cluster_id: node.string(CLUSTER_ID),
        instance_ips: node.strings(INSTANCE_IPS),
    })
}

fn kv_vector<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    entries: &[(String, String)],
) -> WIPOffset<Vector<'b, ForwardsUOffset<KeyVal<'b>>>> {
    let sorted = sort_entries(entries.to_vec());
    let mut offsets = Vec::with_capacity(sorted.len());
    for (k, v) in &sorted {
        let key = fbb.create_string(k);
        let value = fbb.create_string(v);
        let start = fbb.start_table();
        fbb.push_slot_always(KV_KEY, key);
        fbb.push_slot_always(KV_VALUE, value);
        let end = fbb.end_table(start);
        offsets.push(WIPOffset::<KeyVal>::new(end.value()));
    }
    fbb.create_vector(&offsets)
}

fn str_vector<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    items: &[String],
) -> WIPOffset<Vector<'b, ForwardsUOffset<&'b str>>> {
    let offsets: Vec<_> = items.iter().map(|s| fbb.create_string(s)).collect();
    fbb.create_vector(&offsets)
}

/// Builds the buffer the way Istio's builders do: strings and vectors first, then the table.
/// Empty strings are written only when non-empty (an absent string reads as `""` anyway);
/// `labels` is written whenever it is `Some`, so the absent/empty distinction survives.
pub(super) fn encode(node: &PeerNode) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let mut strings: Vec<(u16, WIPOffset<&str>)> = Vec::new();
    for (slot, value) in [
        (NAME, &node.name),
        (NAMESPACE, &node.namespace),
        (OWNER, &node.owner),
        (WORKLOAD_NAME, &node.workload_name),
        (ISTIO_VERSION, &node.istio_version),
        (MESH_ID, &node.mesh_id),
        (CLUSTER_ID, &node.cluster_id),
    ] {
        if !value.is_empty() {
            strings.push((slot, fbb.create_string(value)));
        }
    }
    let labels = node.labels.as_ref().map(|l| kv_vector(&mut fbb, l));
    let platform =
        (!node.platform_metadata.is_empty()).then(|| kv_vector(&mut fbb, &node.platform_metadata));
    let containers =
        (!node.app_containers.is_empty()).then(|| str_vector(&mut fbb, &node.app_containers));
    let ips = (!node.instance_ips.is_empty()).then(|| str_vector(&mut fbb, &node.instance_ips));

    let start = fbb.start_table();
    for (slot, off) in strings {
        fbb.push_slot_always(slot, off);
    }
    if let Some(off) = labels {
        fbb.push_slot_always(LABELS, off);
    }
    if let Some(off) = platform {
        fbb.push_slot_always(PLATFORM_METADATA, off);
    }
    if let Some(off) = containers {
        fbb.push_slot_always(APP_CONTAINERS, off);
    }
    if let Some(off) = ips {
        fbb.push_slot_always(INSTANCE_IPS, off);
    }
    let end = fbb.end_table(start);
    let root = WIPOffset::<FlatNode>::new(end.value());
    fbb.finish_minimal(root);
    fbb.finished_data().to_vec()
}
