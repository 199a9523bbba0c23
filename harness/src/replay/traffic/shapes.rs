//! The wire shapes of a line, `strict` and `lenient` (one macro, instantiated twice), their
//! conversion into the event model, and [`RawLine`], what the decoder needs from either.

use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::fill::{
    body, default_peer_id, direction, fill, fill_body, fill_opt, fill_peer, inbound_cluster,
    opt_str, scheme_port, split_host_port, Body, HeaderFill,
};
use super::timing::{duration_ns, http_plan};
use super::values::{own, present, Flags, Headers, RawDirection, RawMx, Str};
use crate::stream::{
    ConnectionInfo, Direction, HttpExchange, HttpMessage, HttpPlan, MxOutcome, Peer, ServiceRef,
    TcpConnection, UpstreamInfo,
};

/// The wire shapes of one line and their conversion, written once and instantiated twice:
/// `strict` (serde's `deny_unknown_fields`, the fast path: no per-key path tracking) and
/// `lenient` (unknown fields skipped, each reported with its path through `serde_ignored`).
/// A line is decoded strictly first; only a line that fails (an unknown field, a bad value) is
/// decoded again leniently, so lines without unknown fields pay nothing for the warnings.
///
/// The generated items are `pub(in super::super)`: visible in `traffic`, where the decoder
/// uses them, as the instantiating modules sit one level down, in `shapes`.
macro_rules! raw_shapes {
    ($peer:ty; $(#[$strict:meta])*) => {
        #[derive(Deserialize)]
        $(#[$strict])*
        pub(in super::super) struct RawEvent<'a> {
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
            pub(in super::super) peer: Option<$peer>,
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
        pub(in super::super) struct RawGrpcMessages {
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
        pub(in super::super) struct RawRequest<'a> {
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
        pub(in super::super) struct RawResponse<'a> {
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
        pub(in super::super) struct RawPeer<'a> {
            #[serde(borrow)]
            id: Option<Str<'a>>,
            #[serde(default)]
            node: Map<String, Json>,
        }

        #[derive(Deserialize, Default)]
        $(#[$strict])*
        pub(in super::super) struct RawConnection<'a> {
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
        pub(in super::super) struct RawUpstream<'a> {
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
        pub(in super::super) struct RawService<'a> {
            #[serde(borrow, default)]
            name: Str<'a>,
            #[serde(borrow, default)]
            namespace: Str<'a>,
            #[serde(borrow, default)]
            host: Str<'a>,
        }

        pub(in super::super) fn peer(raw: Option<RawPeer>) -> Option<Peer> {
            let raw = raw?;
            let id = own(raw.id).unwrap_or_else(|| default_peer_id(&raw.node));
            Some(Peer {
                id,
                metadata: std::sync::Arc::new(raw.node),
            })
        }

        /// Writes the connection into `out` (every field), reusing its strings.
        pub(in super::super) fn fill_connection(
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
        pub(in super::super) fn fill_upstream(
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

pub(super) mod strict {
    use super::*;
    // The peer stays raw text here: `Decoder` decodes each distinct peer once (`PeerCache`).
    raw_shapes!(&'a serde_json::value::RawValue; #[serde(deny_unknown_fields)]);
}

pub(super) mod lenient {
    use super::*;
    raw_shapes!(RawPeer<'a>;);
}

/// What [`Decoder::finish`] needs from either shape.
pub(super) trait RawLine {
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
