//! Synthetic traffic for the benchmark: webapp's sidecar handling the book's calls (inbound
//! GET /api/catalog from the ingress gateway, outbound /items calls to catalog), with peers,
//! varied durations and sizes, and a few 5xx. Deterministic (a fixed LCG), so runs compare.

use std::io::{self, Write};

/// A 64-bit LCG (Knuth's MMIX constants): plenty for shuffling benchmark traffic.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const GATEWAY_PEER: &str = r#"{"id":"router~10.10.0.9~istio-ingressgateway-6785fcd48-f2z7v.istio-system~istio-system.svc.cluster.local","node":{"NAME":"istio-ingressgateway-6785fcd48-f2z7v","NAMESPACE":"istio-system","WORKLOAD_NAME":"istio-ingressgateway","LABELS":{"app":"istio-ingressgateway","istio":"ingressgateway","service.istio.io/canonical-name":"istio-ingressgateway","service.istio.io/canonical-revision":"latest"},"CLUSTER_ID":"Kubernetes","MESH_ID":"cluster.local","ISTIO_VERSION":"1.17.8"}}"#;

const CATALOG_PEER: &str = r#"{"id":"sidecar~10.10.0.14~catalog-6cf4b97d-abcde.istioinaction~istioinaction.svc.cluster.local","node":{"NAME":"catalog-6cf4b97d-abcde","NAMESPACE":"istioinaction","WORKLOAD_NAME":"catalog","LABELS":{"app":"catalog","version":"v1","service.istio.io/canonical-name":"catalog","service.istio.io/canonical-revision":"v1"},"CLUSTER_ID":"Kubernetes","MESH_ID":"cluster.local","ISTIO_VERSION":"1.17.8"}}"#;

const CATALOG_UPSTREAM: &str = r#"{"cluster":"outbound|80||catalog.istioinaction.svc.cluster.local","address":"10.10.0.14:3000","service":{"name":"catalog","namespace":"istioinaction","host":"catalog.istioinaction.svc.cluster.local"}}"#;

/// Writes `events` HTTP events, one per line.
pub fn write_http_events(out: &mut impl Write, events: u64) -> io::Result<()> {
    let mut rng = Lcg(0x5eed);
    for i in 0..events {
        write_event(out, &mut rng, i)?;
    }
    Ok(())
}

/// The same events as a streaming reader (nothing is stored: lines are generated as the
/// previous ones are consumed), for benchmarks that must not hold a file in memory.
pub struct GenReader {
    rng: Lcg,
    next: u64,
    events: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl GenReader {
    pub fn new(events: u64) -> Self {
        Self {
            rng: Lcg(0x5eed),
            next: 0,
            events,
            buf: Vec::with_capacity(4096),
            pos: 0,
        }
    }
}

impl io::Read for GenReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let data = io::BufRead::fill_buf(self)?;
            let n = data.len().min(out.len());
            out[..n].copy_from_slice(&data[..n]);
            n
        };
        io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl io::BufRead for GenReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.buf.len() && self.next < self.events {
            self.buf.clear();
            self.pos = 0;
            // A few lines per refill keeps the per-call overhead low.
            while self.buf.len() < 2048 && self.next < self.events {
                write_event(&mut self.buf, &mut self.rng, self.next)?;
                self.next += 1;
            }
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.buf.len());
    }
}

/// Event `i`: even ones inbound from the gateway, odd ones outbound to catalog.
fn write_event(out: &mut impl Write, rng: &mut Lcg, i: u64) -> io::Result<()> {
    let outbound = [
        ("GET", "/items"),
        ("POST", "/items"),
        ("DELETE", "/items"),
        ("GET", "/api/catalog"),
    ];
    let code = match rng.below(100) {
        0..=1 => 503,
        2..=4 => 500,
        5..=9 => 404,
        _ => 200,
    };
    let duration = 1 + rng.below(300);
    let resp_bytes = rng.below(4000);
    if i.is_multiple_of(2) {
        writeln!(
            out,
            r#"{{"kind":"http","direction":"inbound","duration_ms":{duration},"request":{{"method":"GET","path":"/api/catalog","authority":"webapp.istioinaction.io:30000","headers":{{"user-agent":"curl/8.7.1","x-forwarded-for":"172.18.0.1"}}}},"response":{{"code":{code},"headers":{{"content-type":"application/json"}},"body_bytes":{resp_bytes}}},"peer":{GATEWAY_PEER},"connection":{{"mtls":true,"peer_principal":"spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account","local_principal":"spiffe://cluster.local/ns/istioinaction/sa/webapp","source_address":"10.10.0.9:47000","destination_address":"10.10.0.17:8080"}}}}"#
        )?;
    } else {
        let (method, path) = outbound[rng.below(outbound.len() as u64) as usize];
        let req_bytes = if method == "POST" {
            64 + rng.below(512)
        } else {
            0
        };
        writeln!(
            out,
            r#"{{"kind":"http","direction":"outbound","duration_ms":{duration},"request":{{"method":"{method}","path":"{path}","authority":"catalog.istioinaction:80","headers":{{"user-agent":"beegoServer"}},"body_bytes":{req_bytes}}},"response":{{"code":{code},"headers":{{"content-type":"application/json"}},"body_bytes":{resp_bytes}}},"peer":{CATALOG_PEER},"connection":{{"mtls":true,"peer_principal":"spiffe://cluster.local/ns/istioinaction/sa/catalog","local_principal":"spiffe://cluster.local/ns/istioinaction/sa/webapp","source_address":"10.10.0.17:46590","destination_address":"10.10.0.14:3000"}},"upstream":{CATALOG_UPSTREAM}}}"#
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::traffic::{Event, TrafficReader};

    #[test]
    fn generated_lines_all_decode() {
        let mut buf = Vec::new();
        write_http_events(&mut buf, 200).unwrap();
        let mut inbound = 0;
        for ev in TrafficReader::new(&buf[..]) {
            let ev = ev.unwrap();
            assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
            let Event::Http(h) = ev.event else {
                panic!("tcp")
            };
            assert!(h.peer.is_some());
            if h.direction == crate::stream::Direction::Inbound {
                inbound += 1;
            }
        }
        assert_eq!(inbound, 100);
    }

    #[test]
    fn reader_yields_the_same_bytes() {
        let mut written = Vec::new();
        write_http_events(&mut written, 57).unwrap();
        let mut read = Vec::new();
        io::Read::read_to_end(&mut GenReader::new(57), &mut read).unwrap();
        assert_eq!(read, written);
    }
}
