//! Host overhead: one empty HTTP stream (request headers with eos, response headers with eos,
//! log, done, delete, context create) through a no-op plugin whose callbacks return at once, so
//! the time measured is the harness's own work per stream.

use criterion::{criterion_group, criterion_main, Criterion};
use envoyfilter_model::chain::{ChainSet, Context, Filter, FilterKind, WasmCode, WasmFilter};
use harness::profile::Profile;
use harness::proxy::Proxy;
use harness::stream::*;

const NOOP: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) i32.const 1024)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
  (func (export "proxy_on_delete") (param i32)))"#;

fn bench(c: &mut Criterion) {
    let wasm = wat::parse_str(NOOP).expect("wat");
    let node = LocalNode {
        id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local".into(),
        cluster: "a.ns".into(),
        metadata: Default::default(),
    };
    let mut proxy = Proxy::new(Profile::ISTIO_1_17, node);
    let mut chains = ChainSet::default();
    chains.http.insert(
        Context::SidecarInbound,
        vec![Filter {
            name: "noop".into(),
            kind: FilterKind::Wasm(WasmFilter {
                plugin_name: "noop".into(),
                root_id: "noop".into(),
                vm_id: "noop".into(),
                runtime: "envoy.wasm.runtime.v8".into(),
                code: WasmCode::LocalFile("noop.wasm".into()),
                configuration: Vec::new(),
                vm_configuration: Vec::new(),
                fail_open: false,
            }),
            origin: String::new(),
        }],
    );
    proxy.load(&chains, &|_| Ok(wasm.clone())).expect("load");
    let x = HttpExchange {
        start_ns: 1_700_000_000_000_000_000,
        duration_ns: 1_000_000,
        protocol: "HTTP/1.1".into(),
        request: HttpMessage {
            headers: vec![
                (":method".into(), "GET".into()),
                (":path".into(), "/".into()),
                (":authority".into(), "a".into()),
            ],
            body: Vec::new(),
            trailers: Vec::new(),
        },
        response: Some(HttpMessage {
            headers: vec![(":status".into(), "200".into())],
            body: Vec::new(),
            trailers: Vec::new(),
        }),
        ..HttpExchange::new(Direction::Inbound)
    };
    c.bench_function("empty_http_stream_noop_plugin", |b| {
        b.iter(|| std::hint::black_box(proxy.run_http(&x)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
