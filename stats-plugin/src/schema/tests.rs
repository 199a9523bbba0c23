use super::*;
use crate::config::parse;

fn schema(json: &str) -> Schema {
    build(&parse(json.as_bytes()).unwrap().config).0
}

fn gen<'a>(s: &'a Schema, metric: &str) -> Option<&'a StatGen> {
    s.stat_gens.iter().find(|g| g.metric == metric)
}

fn tag_names(g: &StatGen) -> Vec<&str> {
    g.tags.iter().map(|t| t.name.as_str()).collect()
}

#[test]
fn standard_metrics_types_and_label_counts() {
    // §2: names, types and label counts 25/20/23.
    let s = schema("{}");
    let expected = [
        ("istio_requests_total", MetricKind::Counter, 25, false),
        (
            "istio_request_duration_milliseconds",
            MetricKind::Histogram,
            25,
            false,
        ),
        ("istio_request_bytes", MetricKind::Histogram, 25, false),
        ("istio_response_bytes", MetricKind::Histogram, 25, false),
        (
            "istio_request_messages_total",
            MetricKind::Counter,
            20,
            true,
        ),
        (
            "istio_response_messages_total",
            MetricKind::Counter,
            20,
            true,
        ),
        ("istio_tcp_sent_bytes_total", MetricKind::Counter, 23, true),
        (
            "istio_tcp_received_bytes_total",
            MetricKind::Counter,
            23,
            true,
        ),
        (
            "istio_tcp_connections_opened_total",
            MetricKind::Counter,
            23,
            true,
        ),
        (
            "istio_tcp_connections_closed_total",
            MetricKind::Counter,
            23,
            false,
        ),
    ];
    assert_eq!(s.stat_gens.len(), expected.len());
    for (name, kind, labels, recurrent) in expected {
        let g = gen(&s, name).unwrap();
        assert_eq!(
            (g.kind, g.tags.len(), g.recurrent),
            (kind, labels, recurrent),
            "{name}"
        );
        for (i, t) in g.tags.iter().enumerate() {
            assert_eq!((t.name.as_str(), t.slot), (STANDARD_TAGS[i], i));
        }
    }
    assert_eq!(
        tag_names(gen(&s, "istio_request_messages_total").unwrap()).last(),
        Some(&"destination_cluster")
    );
    assert_eq!(
        tag_names(gen(&s, "istio_tcp_sent_bytes_total").unwrap()).last(),
        Some(&"connection_security_policy")
    );
}

#[test]
fn expression_slots_are_deduplicated_and_failed_ones_remove_the_tag() {
    let s = schema(
        r#"{"metrics":[{"dimensions":{"a":"request.host","b":"request.host","reporter":"1 +"}}]}"#,
    );
    assert_eq!(s.dimension_exprs.len(), 1);
    assert_eq!(s.slot_count(), 26);
    let g = gen(&s, "istio_requests_total").unwrap();
    let names = tag_names(g);
    assert!(!names.contains(&"reporter"));
    assert_eq!(&names[names.len() - 2..], &["a", "b"]);
    assert!(g.tags.iter().rev().take(2).all(|t| t.slot == 25));
    // TCP metrics got the same new tags (the entry has no name).
    assert!(tag_names(gen(&s, "istio_tcp_sent_bytes_total").unwrap()).contains(&"a"));
}

#[test]
fn value_expressions_are_not_deduplicated() {
    let s = schema(r#"{"definitions":[{"name":"a","value":"1"},{"name":"b","value":"1"}]}"#);
    assert_eq!(s.value_exprs.len(), 2);
    let a = gen(&s, "istio_a").unwrap();
    assert!(a.tags.is_empty());
    assert_eq!(a.protocols, PROTO_HTTP | PROTO_GRPC);
}
