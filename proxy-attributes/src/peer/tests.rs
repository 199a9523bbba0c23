use super::*;
use crate::values::encode_pairs;
use prost::Message as _;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

fn s(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.to_string())),
    }
}

fn st(fields: &[(&str, Value)]) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct {
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        })),
    }
}

/// The ingress-gateway node of crates.md §6 (the "seed header"), rebuilt field by field.
fn gateway_struct() -> Struct {
    Struct {
        fields: [
            ("APP_CONTAINERS", s("")),
            ("CLUSTER_ID", s("Kubernetes")),
            ("INSTANCE_IPS", s("10.10.0.22")),
            ("ISTIO_VERSION", s("1.17.8")),
            (
                "LABELS",
                st(&[
                    ("app", s("istio-ingressgateway")),
                    ("istio", s("ingressgateway")),
                    ("service.istio.io/canonical-name", s("istio-ingressgateway")),
                    ("service.istio.io/canonical-revision", s("latest")),
                ]),
            ),
            ("MESH_ID", s("cluster.local")),
            ("NAME", s("istio-ingressgateway-996bc6bb6-7lnh7")),
            ("NAMESPACE", s("istio-system")),
            (
                "OWNER",
                s("kubernetes://apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway"),
            ),
            ("PLATFORM_METADATA", st(&[])),
            ("WORKLOAD_NAME", s("istio-ingressgateway")),
            ("UNRELATED", s("ignored")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    }
}

#[test]
fn struct_semantics_follow_extract_node_flatbuffer_from_struct() {
    let node = PeerNode::from_struct(&gateway_struct());
    assert_eq!(node.workload_name, "istio-ingressgateway");
    assert_eq!(node.namespace, "istio-system");
    assert_eq!(node.istio_version, "1.17.8");
    assert_eq!(node.mesh_id, "cluster.local");
    assert_eq!(node.cluster_id, "Kubernetes");
    assert_eq!(node.label("app"), Some("istio-ingressgateway"));
    assert_eq!(node.label("version"), None);
    // absl::StrSplit("", ',') yields one empty piece.
    assert_eq!(node.app_containers, vec![String::new()]);
    assert_eq!(node.instance_ips, vec!["10.10.0.22".to_string()]);
    // An empty PLATFORM_METADATA struct builds no vector.
    assert!(node.platform_metadata.is_empty());
}

#[test]
fn labels_absent_or_empty_struct_means_no_vector() {
    let no_labels = Struct {
        fields: [("NAME".to_string(), s("a"))].into_iter().collect(),
    };
    assert_eq!(PeerNode::from_struct(&no_labels).labels, None);
    // proto_util.cc only calls CreateVectorOfSortedTables when labels.size() > 0.
    let empty_labels = Struct {
        fields: [("LABELS".to_string(), st(&[]))].into_iter().collect(),
    };
    assert_eq!(PeerNode::from_struct(&empty_labels).labels, None);
    // A non-string value reads as "" (string_value() of another kind).
    let number = Struct {
        fields: [(
            "WORKLOAD_NAME".to_string(),
            Value {
                kind: Some(Kind::NumberValue(3.0)),
            },
        )]
        .into_iter()
        .collect(),
    };
    assert_eq!(PeerNode::from_struct(&number).workload_name, "");
}

#[test]
fn header_value_round_trips_padded_and_unpadded() {
    let hdr = struct_header_value(&gateway_struct());
    let node = PeerNode::from_header_value(&hdr).unwrap();
    assert_eq!(node, PeerNode::from_struct(&gateway_struct()));
    let unpadded = hdr.trim_end_matches('=');
    assert_eq!(PeerNode::from_header_value(unpadded).unwrap(), node);
}

#[test]
fn flatbuffer_round_trip_keeps_labels_sorted_and_absence() {
    let mut node = PeerNode::from_struct(&gateway_struct());
    node.labels = Some(vec![
        ("version".into(), "v1".into()),
        ("app".into(), "reviews".into()),
    ]);
    node.platform_metadata = vec![("gcp_project".into(), "p".into())];
    let back = PeerNode::from_flatbuffer(&node.to_flatbuffer()).unwrap();
    assert_eq!(
        back.labels,
        Some(vec![
            ("app".into(), "reviews".into()),
            ("version".into(), "v1".into())
        ])
    );
    assert_eq!(back.label("version"), Some("v1"));
    assert_eq!(back.owner, node.owner);
    assert_eq!(back.instance_ips, node.instance_ips);
    assert_eq!(back.platform_metadata, node.platform_metadata);

    let mut bare = back.clone();
    bare.labels = None;
    assert_eq!(
        PeerNode::from_flatbuffer(&bare.to_flatbuffer())
            .unwrap()
            .labels,
        None
    );
    bare.labels = Some(Vec::new());
    assert_eq!(
        PeerNode::from_flatbuffer(&bare.to_flatbuffer())
            .unwrap()
            .labels,
        Some(Vec::new())
    );
}

#[test]
fn hand_built_flatbuffer_reads_namespace_from_field_id_1() {
    // Built by hand from node_info.fbs, independent of our encoder:
    // [0] root uoffset 12 | [4] vtable: len 8, table len 8, field0 (name) absent, field1 (namespace) at +4
    // [12] table: soffset 8 (vtable at 12-8=4) | [16] uoffset 4 -> string at 20 | [20] len 2 "ns" NUL pad
    let bytes = [
        12, 0, 0, 0, 8, 0, 8, 0, 0, 0, 4, 0, 8, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, b'n', b's', 0, 0,
    ];
    let node = PeerNode::from_flatbuffer(&bytes).unwrap();
    assert_eq!(node.namespace, "ns");
    assert_eq!(node.name, "");
    assert_eq!(node.labels, None);
}

#[test]
fn hostile_flatbuffers_return_none_without_panicking() {
    let good = PeerNode::from_struct(&gateway_struct()).to_flatbuffer();
    for cut in 0..good.len() {
        let _ = PeerNode::from_flatbuffer(&good[..cut]);
    }
    assert!(PeerNode::from_flatbuffer(&good[..good.len() / 2]).is_none());
    assert!(PeerNode::from_flatbuffer(&[]).is_none());
    assert!(PeerNode::from_flatbuffer(&[0xff; 64]).is_none());
    // Flip every byte in turn: the verifier must reject or yield a node, never panic.
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0xa5;
        let _ = PeerNode::from_flatbuffer(&bad);
    }
    // Deterministic garbage.
    let mut x: u32 = 0x1234_5678;
    for len in [4usize, 16, 100, 1000] {
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let _ = PeerNode::from_flatbuffer(&buf);
    }
    assert!(PeerNode::from_flatbuffer(&vec![0u8; MAX_FLATBUFFER_BYTES + 1]).is_none());
}

#[test]
fn hostile_headers_return_none() {
    assert!(PeerNode::from_header_value("").is_none());
    assert!(PeerNode::from_header_value("!!!not base64!!!").is_none());
    let bytes = gateway_struct().encode_to_vec();
    let truncated = &bytes[..bytes.len() - 3];
    use base64::Engine as _;
    let hdr = base64::engine::general_purpose::STANDARD.encode(truncated);
    assert!(PeerNode::from_header_value(&hdr).is_none());
    assert!(PeerNode::from_struct_bytes(truncated).is_none());
    assert!(PeerNode::from_header_value(&"A".repeat(MAX_HEADER_BYTES + 4)).is_none());
}

#[test]
fn endpoint_metadata_fallback() {
    let node =
        PeerNode::from_endpoint_metadata("reviews-v1;default;reviews;v1;Kubernetes", 5).unwrap();
    assert_eq!(node.workload_name, "reviews-v1");
    assert_eq!(node.namespace, "default");
    assert_eq!(node.cluster_id, "Kubernetes");
    assert_eq!(node.label(CANONICAL_NAME_LABEL), Some("reviews"));
    assert_eq!(node.label(CANONICAL_REVISION_LABEL), Some("v1"));
    assert_eq!(node.label("app"), None);
    // 1.16+ needs five parts; 1.13–1.15 accept four with no cluster.
    assert!(PeerNode::from_endpoint_metadata("w;ns;svc;rev", 5).is_none());
    let four = PeerNode::from_endpoint_metadata("w;ns;;rev", 4).unwrap();
    assert_eq!(four.cluster_id, "");
    assert_eq!(
        four.labels,
        Some(vec![(CANONICAL_REVISION_LABEL.into(), "rev".into())])
    );
    assert!(PeerNode::from_endpoint_metadata("garbage", 4).is_none());
}

#[test]
fn local_node_from_node_metadata_pairs() {
    let labels = encode_pairs(&[("version", "v1"), ("app", "webapp")]);
    let port = 15020f64.to_le_bytes();
    let bytes = encode_pairs::<&[u8], &[u8]>(&[
        (b"WORKLOAD_NAME", b"webapp"),
        (b"NAMESPACE", b"istioinaction"),
        (b"LABELS", &labels),
        (b"ENVOY_PROMETHEUS_PORT", &port),
        (b"MESH_ID", b"cluster.local"),
        (b"INSTANCE_IPS", b"10.0.0.1,10.0.0.2"),
    ]);
    let node = PeerNode::from_node_metadata(&bytes).unwrap();
    assert_eq!(node.workload_name, "webapp");
    assert_eq!(node.label("app"), Some("webapp"));
    assert_eq!(node.label("version"), Some("v1"));
    assert_eq!(node.instance_ips, vec!["10.0.0.1", "10.0.0.2"]);
    // No LABELS at all: the local node still has an (empty) labels vector.
    let bare = encode_pairs(&[("NAME", "x")]);
    assert_eq!(
        PeerNode::from_node_metadata(&bare).unwrap().labels,
        Some(Vec::new())
    );
    assert!(PeerNode::from_node_metadata(&[1, 0, 0]).is_none());
}

#[test]
fn to_struct_matches_extract_struct_from_node_flatbuffer() {
    let node = PeerNode::from_struct(&gateway_struct());
    let back = node.to_struct();
    assert_eq!(back.fields.get("UNRELATED"), None);
    assert_eq!(back.fields.get("MESH_ID"), Some(&s("cluster.local")));
    assert_eq!(PeerNode::from_struct(&back), node);
}

#[test]
fn node_metadata_and_header_encoders_round_trip() {
    let node = PeerNode::from_struct(&gateway_struct());
    let back = PeerNode::from_node_metadata(&node.to_node_metadata()).unwrap();
    assert_eq!(back, node);
    assert_eq!(
        PeerNode::from_header_value(&node.header_value()).unwrap(),
        node
    );
}
