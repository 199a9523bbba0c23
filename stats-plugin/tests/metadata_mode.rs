//! Istio 1.16's `metadata_mode` (waypoint proxies). Reference: istio/proxy release-1.16
//! `extensions/stats/plugin.cc:505-512` (parse) and `:636-657` (an inbound report in
//! `UPSTREAM_HOST_METADATA_MODE` / `CLUSTER_METADATA_MODE` re-maps the destination labels from
//! `extractPeerMetadataFromUpstream{Host,Cluster}Metadata`, else from the *empty* node),
//! `extensions/common/context.cc:305-365` (the `istio.workload` string, ≥ 5 parts) and
//! `plugin.cc:56-135` (`map_node`). Expected labels are copied from Istio's golden file or
//! derived by hand from those functions, as each test says.

mod common;

use common::*;
use proxy_attributes::host::fake::FakeHost;
use proxy_attributes::peer::PeerNode;
use stats_plugin::{Direction, Stream};
use std::collections::BTreeMap;

const PORT: u16 = 18080;
const UPSTREAM_MODE: &str =
    r#"{"field_separator":";.;","metadata_mode":"UPSTREAM_HOST_METADATA_MODE"}"#;
const HOST_WORKLOAD: [&str; 4] = [
    "upstream_host_metadata",
    "filter_metadata",
    "istio",
    "workload",
];
const CLUSTER_WORKLOAD: [&str; 4] = ["cluster_metadata", "filter_metadata", "istio", "workload"];
/// The endpoint metadata of Istio's test server cluster (`testdata/bootstrap/server.yaml.tmpl`
/// with `EnableEndpointMetadata`).
const RATINGS_ENDPOINT: &str = "ratings-v1;default;ratings;version-1;server-cluster";

/// The waypoint's local node (`testdata/server_waypoint_proxy_node_metadata.json.tmpl`): a
/// namespace, cluster and mesh, but no workload name and no labels.
fn waypoint_node(istio_version: &str) -> PeerNode {
    PeerNode {
        namespace: "default".into(),
        cluster_id: "server-cluster".into(),
        mesh_id: "proj-123".into(),
        istio_version: istio_version.into(),
        ..PeerNode::default()
    }
}

/// One inbound `GET /` → 200 on the waypoint (the client peer from metadata exchange, the
/// `server` service in the cluster metadata, plaintext), without endpoint metadata.
fn waypoint_http(istio_version: &str) -> FakeHost {
    let h = with_local(FakeHost::new(), &waypoint_node(istio_version));
    let h = with_peer(h, Direction::Inbound, "client", &client_node());
    let h = with_services(h);
    http_common(h, PORT)
        .with_str(&["cluster_name"], "server-inbound-cluster")
        .with_str(&["route_name"], "server_route")
        .with_bool(&["connection", "mtls"], false)
}

/// `server_waypoint_proxy_request_total.yaml.tmpl` (release-1.16), verbatim.
fn waypoint_request_total_labels() -> BTreeMap<String, String> {
    let mut l = server_request_total_labels();
    l.insert("destination_app".into(), "unknown".into());
    l.insert("destination_version".into(), "unknown".into());
    l
}

/// Runs `n` requests through a fresh inbound plugin; returns the requests_total series.
fn inbound(host: &FakeHost, config: &str, n: usize) -> Vec<(BTreeMap<String, String>, u64)> {
    let (mut plugin, mut m) = configured(Direction::Inbound, host, config);
    for _ in 0..n {
        run_http(&mut plugin, host, &mut m);
    }
    m.series("istio_requests_total")
}

/// Sets the seven destination labels `map_node` writes plus `destination_service_namespace`.
fn with_destination(
    mut l: BTreeMap<String, String>,
    [workload, namespace, app, version, canonical, revision, cluster]: [&str; 7],
) -> BTreeMap<String, String> {
    for (k, v) in [
        ("destination_workload", workload),
        ("destination_workload_namespace", namespace),
        ("destination_app", app),
        ("destination_version", version),
        ("destination_canonical_service", canonical),
        ("destination_canonical_revision", revision),
        ("destination_cluster", cluster),
        ("destination_service_namespace", namespace),
    ] {
        l.insert(k.into(), v.into());
    }
    l
}

/// Ports `TestStatsServerWaypointProxy` (release-1.16 `test/envoye2e/stats_plugin/stats_test.go`,
/// config `testdata/stats/server_waypoint_proxy_config.yaml`): 10 requests, all 25 labels of
/// `server_waypoint_proxy_request_total.yaml.tmpl`.
#[test]
fn waypoint_server_takes_the_destination_from_the_upstream_host() {
    let host = waypoint_http("1.5-dev").with_str(&HOST_WORKLOAD, RATINGS_ENDPOINT);
    assert_eq!(
        inbound(&host, UPSTREAM_MODE, 10),
        vec![(waypoint_request_total_labels(), 10)]
    );
}

/// The same traffic in the default mode: `map_node(local)` at configure (`plugin.cc:433-435`).
/// The local node always has a (here empty) labels vector, so the canonical service falls back
/// to the empty workload name and the revision to `latest`; empty values become `unknown`.
#[test]
fn default_mode_keeps_the_local_node_as_destination() {
    let host = waypoint_http("1.5-dev").with_str(&HOST_WORKLOAD, RATINGS_ENDPOINT);
    let expected = with_destination(
        waypoint_request_total_labels(),
        [
            "unknown",
            "default",
            "unknown",
            "unknown",
            "unknown",
            "latest",
            "server-cluster",
        ],
    );
    for config in [
        r#"{"field_separator":";.;"}"#,
        r#"{"metadata_mode":"LOCAL_NODE_METADATA_MODE"}"#,
        // Not an enum name Istio compares against: local node (with a warning here).
        r#"{"metadata_mode":"upstream_host_metadata_mode"}"#,
        r#"{"metadata_mode":1}"#,
    ] {
        assert_eq!(
            inbound(&host, config, 3),
            vec![(expected.clone(), 3)],
            "{config}"
        );
    }
}

/// Metadata absent or too short (< 5 parts on 1.16): Istio keeps
/// `extractEmptyNodeFlatBuffer()` (no local-node fallback). `map_node` on a node without a labels
/// vector: every destination value empty → `unknown`, except the revision `latest`.
#[test]
fn missing_or_short_host_metadata_gives_the_empty_node() {
    let expected = with_destination(
        waypoint_request_total_labels(),
        [
            "unknown", "unknown", "unknown", "unknown", "unknown", "latest", "unknown",
        ],
    );
    let absent = waypoint_http("1.5-dev");
    assert_eq!(
        inbound(&absent, UPSTREAM_MODE, 2),
        vec![(expected.clone(), 2)]
    );
    let short =
        waypoint_http("1.5-dev").with_str(&HOST_WORKLOAD, "ratings-v1;default;ratings;version-1");
    assert_eq!(inbound(&short, UPSTREAM_MODE, 2), vec![(expected, 2)]);
}

/// Empty canonical parts add no label, but the node still has a labels vector: the canonical
/// service falls back to the workload name, the revision to `latest` (`context.cc:321-330`,
/// `plugin.cc:112-124`). Parts beyond the fifth are ignored.
#[test]
fn empty_canonical_parts_fall_back_like_map_node() {
    let host =
        waypoint_http("1.5-dev").with_str(&HOST_WORKLOAD, "reviews-v2;bookinfo;;;east;extra");
    let expected = with_destination(
        waypoint_request_total_labels(),
        [
            "reviews-v2",
            "bookinfo",
            "unknown",
            "unknown",
            "reviews-v2",
            "latest",
            "east",
        ],
    );
    assert_eq!(inbound(&host, UPSTREAM_MODE, 1), vec![(expected, 1)]);
}

/// `CLUSTER_METADATA_MODE` reads the same key from `cluster_metadata`, not the host.
#[test]
fn cluster_mode_reads_the_cluster_metadata() {
    let host = waypoint_http("1.5-dev")
        .with_str(&HOST_WORKLOAD, "wrong;wrong;wrong;wrong;wrong")
        .with_str(&CLUSTER_WORKLOAD, RATINGS_ENDPOINT);
    assert_eq!(
        inbound(&host, r#"{"metadata_mode":"CLUSTER_METADATA_MODE"}"#, 4),
        vec![(waypoint_request_total_labels(), 4)]
    );
}

/// The remap is per report (a waypoint serves many workloads): one plugin, two upstream hosts,
/// two series.
#[test]
fn each_report_reads_its_own_upstream_host() {
    let ratings = waypoint_http("1.5-dev").with_str(&HOST_WORKLOAD, RATINGS_ENDPOINT);
    let reviews = waypoint_http("1.5-dev").with_str(
        &HOST_WORKLOAD,
        "reviews-v2;default;reviews;v2;server-cluster",
    );
    let (mut plugin, mut m) = configured(Direction::Inbound, &ratings, UPSTREAM_MODE);
    for _ in 0..3 {
        run_http(&mut plugin, &ratings, &mut m);
        run_http(&mut plugin, &reviews, &mut m);
    }
    run_http(&mut plugin, &ratings, &mut m);
    let mut series = m.series("istio_requests_total");
    series.sort();
    let reviews_labels = with_destination(
        waypoint_request_total_labels(),
        [
            "reviews-v2",
            "default",
            "unknown",
            "unknown",
            "reviews",
            "v2",
            "server-cluster",
        ],
    );
    let mut expected = vec![(waypoint_request_total_labels(), 4), (reviews_labels, 3)];
    expected.sort();
    assert_eq!(series, expected);
}

/// Only inbound roots remap (`!outbound_`, `plugin.cc:637`): an outbound plugin with the mode
/// reports exactly Istio's default client series (`client_request_total.yaml.tmpl`), the local
/// node as source and the MX peer as destination, whatever the upstream host says.
#[test]
fn outbound_ignores_the_mode() {
    let host = client_http(PORT).with_str(&HOST_WORKLOAD, "wrong;wrong;wrong;wrong;wrong");
    let (mut plugin, mut m) = configured(Direction::Outbound, &host, UPSTREAM_MODE);
    for _ in 0..2 {
        run_http(&mut plugin, &host, &mut m);
    }
    assert_eq!(
        m.one("istio_requests_total"),
        (client_request_total_labels(), 2)
    );
}

/// The field exists in the 1.16 plugin only (absent from release-1.15's and release-1.17's
/// `extensions/stats`): on those proxies (local ISTIO_VERSION) it is an unknown key and the
/// local node stays the destination.
#[test]
fn other_releases_ignore_the_field() {
    let local_mode = with_destination(
        waypoint_request_total_labels(),
        [
            "unknown",
            "default",
            "unknown",
            "unknown",
            "unknown",
            "latest",
            "server-cluster",
        ],
    );
    for version in ["1.13.9", "1.15.7", "1.17.8"] {
        let host = waypoint_http(version).with_str(&HOST_WORKLOAD, RATINGS_ENDPOINT);
        assert_eq!(
            inbound(&host, UPSTREAM_MODE, 1),
            vec![(local_mode.clone(), 1)],
            "{version}"
        );
    }
    let host = waypoint_http("1.16.7").with_str(&HOST_WORKLOAD, RATINGS_ENDPOINT);
    assert_eq!(
        inbound(&host, UPSTREAM_MODE, 1),
        vec![(waypoint_request_total_labels(), 1)]
    );
}

/// `report()` is shared by HTTP and TCP, so the remap applies to TCP ticks and the close too.
/// Labels: the waypoint HTTP set with the TCP differences of Istio's TCP goldens
/// (`tcp_server_connection_open.yaml.tmpl`: no `response_code` / `grpc_response_status`,
/// `request_protocol` `tcp`); plaintext, so principals `unknown` and security policy `none`.
#[test]
fn tcp_reports_remap_too() {
    let h = with_local(FakeHost::new(), &waypoint_node("1.16.7"));
    let h = with_peer(h, Direction::Inbound, "client", &client_node());
    let host = with_services(h)
        .with_str(&["cluster_name"], "inbound|9080||")
        .with_bool(&["connection", "mtls"], false)
        .with_i64(&["response", "flags"], 0)
        .with_str(&HOST_WORKLOAD, RATINGS_ENDPOINT);
    let (mut plugin, mut m) = configured(Direction::Inbound, &host, UPSTREAM_MODE);
    let mut s = Stream::new();
    plugin.on_new_connection(&mut s);
    plugin.on_downstream_data(&mut s, 6);
    plugin.on_upstream_data(&mut s, 12);
    plugin.report(&host, &mut m, &mut s, false);
    plugin.on_log(&host, &mut m, &mut s);

    let mut labels = waypoint_request_total_labels();
    labels.remove("response_code");
    labels.remove("grpc_response_status");
    labels.insert("request_protocol".into(), "tcp".into());
    assert_eq!(
        m.one("istio_tcp_connections_opened_total"),
        (labels.clone(), 1)
    );
    assert_eq!(
        m.one("istio_tcp_connections_closed_total"),
        (labels.clone(), 1)
    );
    assert_eq!(m.one("istio_tcp_received_bytes_total"), (labels.clone(), 6));
    assert_eq!(m.one("istio_tcp_sent_bytes_total"), (labels, 12));
}
