//! Istio's standard tags and metrics (`extensions/stats/plugin.h:60-112`, `plugin.cc:189-282`).

use crate::series::MetricKind;

/// `STD_ISTIO_DIMENSIONS`, in Istio's order: the index is the dimension slot (stats-spec §3.1).
pub const STANDARD_TAGS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
];

/// Slot indexes of the standard dimensions.
pub mod slot {
    pub const REPORTER: usize = 0;
    pub const SOURCE_WORKLOAD: usize = 1;
    pub const SOURCE_WORKLOAD_NAMESPACE: usize = 2;
    pub const SOURCE_PRINCIPAL: usize = 3;
    pub const SOURCE_APP: usize = 4;
    pub const SOURCE_VERSION: usize = 5;
    pub const SOURCE_CANONICAL_SERVICE: usize = 6;
    pub const SOURCE_CANONICAL_REVISION: usize = 7;
    pub const SOURCE_CLUSTER: usize = 8;
    pub const DESTINATION_WORKLOAD: usize = 9;
    pub const DESTINATION_WORKLOAD_NAMESPACE: usize = 10;
    pub const DESTINATION_PRINCIPAL: usize = 11;
    pub const DESTINATION_APP: usize = 12;
    pub const DESTINATION_VERSION: usize = 13;
    pub const DESTINATION_SERVICE: usize = 14;
    pub const DESTINATION_SERVICE_NAME: usize = 15;
    pub const DESTINATION_SERVICE_NAMESPACE: usize = 16;
    pub const DESTINATION_CANONICAL_SERVICE: usize = 17;
    pub const DESTINATION_CANONICAL_REVISION: usize = 18;
    pub const DESTINATION_CLUSTER: usize = 19;
    pub const REQUEST_PROTOCOL: usize = 20;
    pub const RESPONSE_FLAGS: usize = 21;
    pub const CONNECTION_SECURITY_POLICY: usize = 22;
    pub const RESPONSE_CODE: usize = 23;
    pub const GRPC_RESPONSE_STATUS: usize = 24;
}

/// The standard slots filled from the source node's `map_node` values (the principal is not one:
/// it comes from the connection).
pub const SOURCE_NODE_SLOTS: &[usize] = &[
    slot::SOURCE_WORKLOAD,
    slot::SOURCE_WORKLOAD_NAMESPACE,
    slot::SOURCE_APP,
    slot::SOURCE_VERSION,
    slot::SOURCE_CANONICAL_SERVICE,
    slot::SOURCE_CANONICAL_REVISION,
    slot::SOURCE_CLUSTER,
];

/// The standard slots filled from the destination node's `map_node` values (including
/// `destination_service_namespace`, the node's namespace, `plugin.cc:167`).
pub const DESTINATION_NODE_SLOTS: &[usize] = &[
    slot::DESTINATION_WORKLOAD,
    slot::DESTINATION_WORKLOAD_NAMESPACE,
    slot::DESTINATION_APP,
    slot::DESTINATION_VERSION,
    slot::DESTINATION_SERVICE_NAMESPACE,
    slot::DESTINATION_CANONICAL_SERVICE,
    slot::DESTINATION_CANONICAL_REVISION,
    slot::DESTINATION_CLUSTER,
];

/// `slots` as a bit set (bit `i` = slot `i`), for per-request membership tests.
pub const fn slot_mask(slots: &[usize]) -> u32 {
    let mut mask = 0u32;
    let mut i = 0;
    while i < slots.len() {
        mask |= 1 << slots[i];
        i += 1;
    }
    mask
}

pub const SOURCE_NODE_MASK: u32 = slot_mask(SOURCE_NODE_SLOTS);
pub const DESTINATION_NODE_MASK: u32 = slot_mask(DESTINATION_NODE_SLOTS);

/// The slots formatted from a request's outcome (protocol, flag bits, mTLS, status codes), which
/// the metric cache keys by those inputs rather than by the label text.
pub const OUTCOME_MASK: u32 = slot_mask(&[
    slot::REQUEST_PROTOCOL,
    slot::RESPONSE_FLAGS,
    slot::CONNECTION_SECURITY_POLICY,
    slot::RESPONSE_CODE,
    slot::GRPC_RESPONSE_STATUS,
]);

/// `count_standard_labels`, `count_peer_labels`, `count_tcp_labels` (`plugin.h:102-112`).
pub const COUNT_STANDARD_LABELS: usize = 25;
pub const COUNT_PEER_LABELS: usize = slot::DESTINATION_CLUSTER + 1;
pub const COUNT_TCP_LABELS: usize = slot::CONNECTION_SECURITY_POLICY + 1;

/// Protocol bits of a metric factory (`Wasm::Common::Protocol`).
pub const PROTO_HTTP: u8 = 1;
pub const PROTO_GRPC: u8 = 2;
pub const PROTO_TCP: u8 = 4;

/// Where a metric's value comes from (the C++ `ValueExtractorFn`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    One,
    DurationMs,
    RequestBytes,
    ResponseBytes,
    /// Delta since the last report (recurrent).
    RequestMessages,
    ResponseMessages,
    /// Swap-to-zero accumulators (recurrent).
    TcpSentBytes,
    TcpReceivedBytes,
    TcpOpened,
    TcpClosed,
    /// `definitions[]`: index into the schema's value expressions.
    Custom(usize),
}

/// A metric factory before overrides (`MetricFactory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factory {
    pub name: String,
    pub kind: MetricKind,
    pub value: ValueSource,
    pub protocols: u8,
    pub count_labels: usize,
    pub recurrent: bool,
}

/// `defaultMetrics()` (`plugin.cc:194-282`).
pub fn standard_factories() -> Vec<Factory> {
    use MetricKind::{Counter, Histogram};
    use ValueSource::*;
    let http = PROTO_HTTP | PROTO_GRPC;
    let f = |name: &str, kind, value, protocols, count_labels, recurrent| Factory {
        name: name.to_string(),
        kind,
        value,
        protocols,
        count_labels,
        recurrent,
    };
    vec![
        f(
            "requests_total",
            Counter,
            One,
            http,
            COUNT_STANDARD_LABELS,
            false,
        ),
        f(
            "request_duration_milliseconds",
            Histogram,
            DurationMs,
            http,
            COUNT_STANDARD_LABELS,
            false,
        ),
        f(
            "request_bytes",
            Histogram,
            RequestBytes,
            http,
            COUNT_STANDARD_LABELS,
            false,
        ),
        f(
            "response_bytes",
            Histogram,
            ResponseBytes,
            http,
            COUNT_STANDARD_LABELS,
            false,
        ),
        f(
            "request_messages_total",
            Counter,
            RequestMessages,
            PROTO_GRPC,
            COUNT_PEER_LABELS,
            true,
        ),
        f(
            "response_messages_total",
            Counter,
            ResponseMessages,
            PROTO_GRPC,
            COUNT_PEER_LABELS,
            true,
        ),
        f(
            "tcp_sent_bytes_total",
            Counter,
            TcpSentBytes,
            PROTO_TCP,
            COUNT_TCP_LABELS,
            true,
        ),
        f(
            "tcp_received_bytes_total",
            Counter,
            TcpReceivedBytes,
            PROTO_TCP,
            COUNT_TCP_LABELS,
            true,
        ),
        f(
            "tcp_connections_opened_total",
            Counter,
            TcpOpened,
            PROTO_TCP,
            COUNT_TCP_LABELS,
            true,
        ),
        f(
            "tcp_connections_closed_total",
            Counter,
            TcpClosed,
            PROTO_TCP,
            COUNT_TCP_LABELS,
            false,
        ),
    ]
}

#[cfg(test)]
mod node_slot_tests {
    use super::*;

    /// The node-valued slots of `plugin.cc:138-180`: per side workload, namespace, app, version,
    /// canonical service and revision, cluster — plus, on the destination side,
    /// `destination_service_namespace`. Principals, services, protocol, flags, policy, codes and
    /// the reporter come from the request, never from a node.
    #[test]
    fn node_slots_are_the_map_node_values() {
        assert_eq!(SOURCE_NODE_MASK.count_ones(), 7);
        assert_eq!(DESTINATION_NODE_MASK.count_ones(), 8);
        assert_eq!(SOURCE_NODE_MASK & DESTINATION_NODE_MASK, 0);
        for not_node in [
            slot::REPORTER,
            slot::SOURCE_PRINCIPAL,
            slot::DESTINATION_PRINCIPAL,
            slot::DESTINATION_SERVICE,
            slot::DESTINATION_SERVICE_NAME,
            slot::REQUEST_PROTOCOL,
            slot::RESPONSE_FLAGS,
            slot::CONNECTION_SECURITY_POLICY,
            slot::RESPONSE_CODE,
            slot::GRPC_RESPONSE_STATUS,
        ] {
            assert_eq!(
                (SOURCE_NODE_MASK | DESTINATION_NODE_MASK) & (1 << not_node),
                0
            );
        }
        assert_ne!(
            DESTINATION_NODE_MASK & (1 << slot::DESTINATION_SERVICE_NAMESPACE),
            0
        );
    }
}
