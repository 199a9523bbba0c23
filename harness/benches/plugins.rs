//! Per-request cost of the real plugins in wasmtime: one outbound HTTP exchange (webapp →
//! catalog, upstream peer learnt by metadata exchange) through the SIDECAR_OUTBOUND chain of the
//! default `webapp` node, for
//!
//! * `noop` — the same chain with a no-op Wasm filter: the harness's own cost per stream
//!   (metadata exchange emulation, stream/callback plumbing); plugin cost = total − this;
//! * `stats_default` — istio.stats with `{}` (Istio's default outbound config);
//! * `stats_book` — istio.attributegen (the book's `istio_operationId` rules) before istio.stats
//!   with the book's dimensions `upstream_proxy_version: upstream_peer.istio_version`,
//!   `source_mesh_id: node.metadata['MESH_ID']`, `upstream_operation: istio_operationId` and the
//!   `get_calls` definition (book-examples.md §1–§3, as in envoyfilters/1.17/);
//! * `attributegen_book` — istio.attributegen alone with the book rules;
//! * `floor_stats_default`, `floor_attributegen_book` — the ABI floor of the two plugin cases:
//!   a hand-written module with the same exports that makes exactly the host calls the plugin
//!   makes for this exchange (same properties, header and metric calls, in the same callbacks)
//!   and nothing else, with an allocator that is one constant. Plugin cost = floor + the
//!   module's own work, so the floor is what no implementation of these plugins under
//!   Envoy's ABI can go below in this harness.
//!
//! Env: `PLUGINS_BENCH_N` (streams per round), `PLUGINS_BENCH_ROUNDS` (interleaved rounds, 9),
//! `PLUGINS_BENCH_ONLY=<case>[,<case>…]` (those cases, the table only, no criterion; for
//! callgrind or a quick table), `PLUGINS_BENCH_WASM_DIR` (plugins built elsewhere).
//!
//! `cargo bench -p harness --bench plugins` prints a table (best and median of interleaved rounds,
//! ns/request, and the best minus noop) before criterion's own output. Goals (stats-spec/perf issues): stats default ≤ 2 µs, book ≤ 5 µs,
//! attributegen book rules ≤ 500 ns.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::Criterion;
use harness::cli::args::SetupArgs;
use harness::cli::load::{load_proxy, LoadFailure};
use harness::cli::setup::prepare;
use harness::proxy::Proxy;
use harness::stream::*;
use serde_json::json;

const NOOP_WAT: &str = r#"(module
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

/// The properties istio.stats reads in `onLog` for this exchange with `{}` (outbound, upstream
/// peer from filter state, no CEL): the reads `stats-plugin/examples/report_bench.rs` prints
/// with `TRACE_CALLS=1`, in that order, less `request.method` (the book's `get_calls` only).
const STATS_DEFAULT_READS: [&str; 13] = [
    "request.host",
    "upstream_peer_id",
    "cluster_name",
    "route_name",
    "cluster_metadata.filter_metadata.istio.services.0.name",
    "cluster_metadata.filter_metadata.istio.services.0.host",
    "upstream.uri_san_peer_certificate",
    "upstream.uri_san_local_certificate",
    "response.code",
    "response.flags",
    "request.duration",
    "request.total_size",
    "response.total_size",
];

/// A module with the given exports' shapes that, per stream, makes the listed host calls and
/// nothing else. Strings live in a data segment from offset 1024; out-pointers and metric ids
/// below it; `malloc` always answers 4096 (values are never read).
fn floor_wat(
    request_header: Option<&str>,
    log_reads: &[&str],
    metrics: usize,
    set: Option<(&str, &str)>,
    response_headers: bool,
) -> String {
    let mut data = Vec::<u8>::new();
    let mut put = |s: &str| -> (usize, usize) {
        let at = 1024 + data.len();
        // ABI property paths are the parts joined with NUL.
        data.extend(s.bytes().map(|b| if b == b'.' { 0 } else { b }));
        (at, s.len())
    };
    let header = request_header.map(&mut put);
    let reads: Vec<(usize, usize)> = log_reads.iter().map(|p| put(p)).collect();
    let set = set.map(|(k, v)| (put(k), put(v)));
    let names: Vec<(usize, usize)> = (0..metrics)
        .map(|i| put(&format!("floor_metric_{i}")))
        .collect();
    // WAT string: every byte as a `\hh` escape.
    let data: String = data.iter().map(|b| format!("\\{b:02x}")).collect();
    let mut configure = String::new();
    for (i, (at, len)) in names.iter().enumerate() {
        // Type: the first a counter (requests_total), the rest histograms (duration, sizes).
        let t = if i == 0 { 0 } else { 2 };
        configure += &format!("(drop (call $define (i32.const {t}) (i32.const {at}) (i32.const {len}) (i32.const {})))\n", 64 + 4 * i);
    }
    let mut on_log = String::new();
    for (at, len) in &reads {
        on_log += &format!(
            "(drop (call $get (i32.const {at}) (i32.const {len}) (i32.const 16) (i32.const 20)))\n"
        );
    }
    for i in 0..metrics {
        let id = format!("(i32.load (i32.const {}))", 64 + 4 * i);
        on_log += &if i == 0 {
            format!("(drop (call $inc {id} (i64.const 1)))\n")
        } else {
            format!("(drop (call $rec {id} (i64.const 3)))\n")
        };
    }
    if let Some(((k, kl), (v, vl))) = set {
        on_log += &format!("(drop (call $set (i32.const {k}) (i32.const {kl}) (i32.const {v}) (i32.const {vl})))\n");
    }
    let on_request = header.map_or(String::new(), |(at, len)| {
        format!("(drop (call $header (i32.const 0) (i32.const {at}) (i32.const {len}) (i32.const 16) (i32.const 20)))")
    });
    let response = if response_headers {
        r#"(func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) i32.const 0)"#
    } else {
        ""
    };
    format!(
        r#"(module
  (import "env" "proxy_get_property" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
  (import "env" "proxy_record_metric" (func $rec (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{data}")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) i32.const 4096)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) {configure} i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {on_request} i32.const 0)
  {response}
  (func (export "proxy_on_log") (param i32) {on_log})
  (func (export "proxy_on_delete") (param i32)))"#
    )
}

const BOOK_ATTRIBUTEGEN: &str = r#"{"attributes": [{"output_attribute": "istio_operationId", "match": [{"value": "getitems", "condition": "request.url_path == '/items' && request.method == 'GET'"}, {"value": "createitem", "condition": "request.url_path == '/items' && request.method == 'POST'"}, {"value": "deleteitem", "condition": "request.url_path == '/items' && request.method == 'DELETE'"}]}]}"#;

const BOOK_STATS: &str = r#"{"definitions":[{"name":"get_calls","type":"COUNTER","value":"(request.method.startsWith('GET') ? 1 : 0)"}],"metrics":[{"dimensions":{"upstream_operation":"istio_operationId","source_mesh_id":"node.metadata['MESH_ID']","upstream_proxy_version":"upstream_peer.istio_version"},"name":"requests_total"}]}"#;

/// One SIDECAR_OUTBOUND patch inserting `name` (file `file` in the wasm dir) before the router.
fn patch(name: &str, vm_id: &str, root_id: &str, file: &str, config: &str) -> String {
    format!(
        r#"  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      proxy:
        proxyVersion: '^1\.17.*'
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter:
              name: envoy.filters.http.router
    patch:
      operation: INSERT_BEFORE
      value:
        name: {name}
        typed_config:
          '@type': type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
          value:
            config:
              root_id: {root_id}
              configuration:
                '@type': type.googleapis.com/google.protobuf.StringValue
                value: {config:?}
              vm_config:
                vm_id: {vm_id}
                runtime: envoy.wasm.runtime.v8
                code:
                  local:
                    filename: /etc/istio/extensions/{file}
"#
    )
}

/// A proxy whose outbound chain holds the given patches (in order, each before the router).
fn proxy(dir: &Path, case: &str, patches: &[String]) -> Proxy {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: bench-{case}\n  namespace: istio-system\nspec:\n  configPatches:\n{}",
        patches.concat()
    );
    let file = dir.join(format!("{case}.yaml"));
    std::fs::write(&file, yaml).expect("write envoyfilter");
    let args = SetupArgs {
        proxy_version: "1.17.8".into(),
        node: None,
        envoyfilter: vec![file],
        wasm_dir: Some(dir.to_path_buf()),
        extra_stat_tags: Vec::new(),
    };
    let setup = prepare(&args, &mut |_| {}).unwrap_or_else(|e| panic!("setup {case}: {e}"));
    match load_proxy(&setup, &mut |_| {}) {
        Ok((p, _)) => p,
        Err(LoadFailure::Setup(e)) => panic!("setup {case}: {e}"),
        Err(LoadFailure::Plugin(e)) => panic!("plugin {case}: {e}"),
    }
}

/// webapp → catalog `GET /items`, 200, catalog's sidecar as the upstream peer.
fn exchange() -> HttpExchange {
    let meta = json!({
        "NAME": "catalog-5d8f7c9b4-abcde",
        "NAMESPACE": "istioinaction",
        "WORKLOAD_NAME": "catalog",
        "OWNER": "kubernetes://apis/apps/v1/namespaces/istioinaction/deployments/catalog",
        "CLUSTER_ID": "Kubernetes",
        "MESH_ID": "cluster.local",
        "ISTIO_VERSION": "1.17.8",
        "APP_CONTAINERS": "catalog",
        "INSTANCE_IPS": "10.10.0.20",
        "LABELS": {
            "app": "catalog",
            "version": "v1",
            "security.istio.io/tlsMode": "istio",
            "service.istio.io/canonical-name": "catalog",
            "service.istio.io/canonical-revision": "v1"
        }
    });
    let serde_json::Value::Object(metadata) = meta else {
        unreachable!()
    };
    HttpExchange {
        direction: Direction::Outbound,
        start_ns: 1_700_000_000_000_000_000,
        duration_ns: 3_000_000,
        protocol: "HTTP/1.1".into(),
        request: HttpMessage {
            headers: vec![
                (":method".into(), "GET".into()),
                (":path".into(), "/items".into()),
                (":authority".into(), "catalog.istioinaction:80".into()),
                ("user-agent".into(), "curl/7.88.1".into()),
                ("accept".into(), "*/*".into()),
            ],
            body: Vec::new(),
            trailers: Vec::new(),
        },
        response: Some(HttpMessage {
            headers: vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: vec![b'x'; 502],
            trailers: Vec::new(),
        }),
        response_flags: 0,
        code_details: "via_upstream".into(),
        connection: ConnectionInfo {
            id: 7,
            mtls: false,
            local_principal: Some("spiffe://cluster.local/ns/istioinaction/sa/webapp".into()),
            peer_principal: Some("spiffe://cluster.local/ns/istioinaction/sa/catalog".into()),
            source_address: "10.10.0.17:40000".into(),
            destination_address: "10.96.0.30:80".into(),
            requested_server_name: String::new(),
        },
        upstream: UpstreamInfo {
            cluster_name: "outbound|80||catalog.istioinaction.svc.cluster.local".into(),
            address: Some("10.10.0.20:3000".into()),
            service: Some(ServiceRef {
                name: "catalog".into(),
                namespace: "istioinaction".into(),
                host: "catalog.istioinaction.svc.cluster.local".into(),
            }),
            endpoint_workload: None,
        },
        route_name: "catalog.istioinaction.svc.cluster.local:80".into(),
        peer: Some(Peer {
            id: "sidecar~10.10.0.20~catalog-5d8f7c9b4-abcde.istioinaction~istioinaction.svc.cluster.local".into(),
            metadata: metadata.into(),
        }),
        grpc_messages: None,
    }
}

fn run(proxy: &mut Proxy, x: &HttpExchange) {
    let out = proxy.run_http(x);
    assert!(out.traps.is_empty(), "trap: {:?}", out.traps.first());
    if !proxy.logs().is_empty() {
        proxy.clear_logs();
    }
    black_box(out);
}

/// Time of one round: `n` streams, ns per stream.
fn round_ns(proxy: &mut Proxy, x: &HttpExchange, n: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        run(proxy, x);
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    // PLUGINS_BENCH_WASM_DIR=<dir>: other builds of the plugins (e.g. an older commit's
    // target/plugins) for before/after comparisons.
    let built = match std::env::var_os("PLUGINS_BENCH_WASM_DIR") {
        Some(d) => PathBuf::from(d),
        None => xtask::plugins::ensure_built(),
    };
    let dir: PathBuf = std::env::temp_dir().join(format!("plugins-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for f in ["stats_plugin.wasm", "attributegen_plugin.wasm"] {
        std::fs::copy(built.join(f), dir.join(f)).expect("copy plugin");
    }
    std::fs::write(
        dir.join("noop.wasm"),
        wat::parse_str(NOOP_WAT).expect("wat"),
    )
    .expect("noop");
    // The floors: stats `{}` reads content-type on request headers (gRPC detection), 13
    // properties and 4 metric calls in onLog, and exports response headers (its tick queue);
    // attributegen's book rules read url_path and method and set istio_operationId in onLog.
    let floors = [
        (
            "floor_stats.wasm",
            floor_wat(Some("content-type"), &STATS_DEFAULT_READS, 4, None, true),
        ),
        (
            "floor_attributegen.wasm",
            floor_wat(
                None,
                &["request.url_path", "request.method"],
                0,
                Some(("istio_operationId", "getitems")),
                false,
            ),
        ),
    ];
    for (file, wat) in floors {
        std::fs::write(dir.join(file), wat::parse_str(&wat).expect("floor wat")).expect("floor");
    }

    let stats = |config: &str| {
        patch(
            "istio.stats",
            "stats_outbound",
            "stats_outbound",
            "stats_plugin.wasm",
            config,
        )
    };
    let attrgen = || {
        patch(
            "istio.attributegen",
            "attributegen",
            "",
            "attributegen_plugin.wasm",
            BOOK_ATTRIBUTEGEN,
        )
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "noop",
            vec![patch("noop", "noop", "noop", "noop.wasm", "{}")],
        ),
        ("stats_default", vec![stats("{}")]),
        ("stats_book", vec![attrgen(), stats(BOOK_STATS)]),
        ("attributegen_book", vec![attrgen()]),
        (
            "floor_stats_default",
            vec![patch("floor", "floor", "floor", "floor_stats.wasm", "{}")],
        ),
        (
            "floor_attributegen_book",
            vec![patch(
                "floor",
                "floor",
                "floor",
                "floor_attributegen.wasm",
                "{}",
            )],
        ),
    ];
    // PLUGINS_BENCH_ONLY=<case>[,<case>…]: those cases, no criterion run (for perf/callgrind).
    let only = std::env::var("PLUGINS_BENCH_ONLY").ok();
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(name, _)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|o| o == *name))
        })
        .collect();
    let x = exchange();
    let n: u32 = std::env::var("PLUGINS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);

    let mut proxies: Vec<(&str, Proxy)> = cases
        .iter()
        .map(|(name, patches)| (*name, proxy(&dir, name, patches)))
        .collect();
    for (_, p) in &mut proxies {
        for _ in 0..2_000 {
            run(p, &x);
        }
    }
    // Rounds interleave the cases, so a burst of load from a neighbour on a shared machine hits
    // every case alike instead of one; per case the best round (noise only ever adds time) and
    // the median are reported, and the differences use the best.
    let rounds_n: usize = std::env::var("PLUGINS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(9);
    let mut rounds: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds_n); proxies.len()];
    for _ in 0..rounds_n {
        for ((_, p), r) in proxies.iter_mut().zip(&mut rounds) {
            r.push(round_ns(p, &x, n));
        }
    }
    println!(
        "| case | ns/stream, best of {rounds_n} × {n} | median | plugin cost (best − noop best) |"
    );
    println!("|---|---:|---:|---:|");
    let mut noop = 0.0;
    let mut times = Vec::new();
    for ((name, _), r) in proxies.iter().zip(&mut rounds) {
        r.sort_by(f64::total_cmp);
        let (best, median) = (r[0], r[r.len() / 2]);
        if *name == "noop" {
            noop = best;
            println!("| {name} | {best:.0} | {median:.0} | – |");
        } else {
            println!("| {name} | {best:.0} | {median:.0} | {:.0} |", best - noop);
        }
        times.push((*name, best));
    }
    // The module's own work: a plugin case minus its ABI floor.
    let time = |case: &str| times.iter().find(|(n, _)| *n == case).map(|(_, t)| *t);
    for (plugin, floor) in [
        ("stats_default", "floor_stats_default"),
        ("attributegen_book", "floor_attributegen_book"),
    ] {
        if let (Some(p), Some(f)) = (time(plugin), time(floor)) {
            println!("{plugin}: {:.0} ns above its ABI floor ({floor})", p - f);
        }
    }

    if only.is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let mut c = Criterion::default().sample_size(20).configure_from_args();
    let mut group = c.benchmark_group("plugins_outbound_http");
    for (name, p) in &mut proxies {
        group.bench_function(*name, |b| b.iter(|| run(p, &x)));
    }
    group.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
