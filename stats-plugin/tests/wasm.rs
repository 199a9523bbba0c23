//! Pure logic inside wasm32 (`wasm-bindgen-test`, run with `wasm-bindgen-test-runner`): config
//! parsing, schema building (CEL compile in wasm), label building through the fake host.
#![cfg(target_arch = "wasm32")]

use proxy_attributes::host::fake::FakeHost;
use stats_plugin::config::parse;
use stats_plugin::series::naming::{istio_build_name, stat_name};
use stats_plugin::{Direction, MetricKind, Metrics, StatsPlugin, Stream};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn config_parse_in_wasm() {
    let p =
        parse(br#"{"tcp_reporting_duration":"1.5s","metrics":[{"dimensions":{"b":"'x'","a":1}}]}"#)
            .unwrap();
    assert_eq!(p.config.tcp_reporting_duration_ms, 1500);
    assert!(p.config.metrics[0].dimensions_error);
    assert!(parse(b"[]").is_err());
}

#[wasm_bindgen_test]
fn names_in_wasm() {
    let tags = vec![stats_plugin::schema::Tag {
        name: "reporter".into(),
        slot: 0,
    }];
    assert_eq!(
        stat_name("istio_requests_total", &tags, ";.;", "=.=", |_| "source"),
        "reporter=.=source;.;istio_requests_total"
    );
    assert_eq!(
        istio_build_name("1.17.8"),
        "component.proxy.tag.1.17.8;.istio_build"
    );
}

#[derive(Default)]
struct Names(Vec<String>);

impl Metrics for Names {
    fn define(&mut self, _kind: MetricKind, name: &str) -> Option<u32> {
        self.0.push(name.to_string());
        Some(self.0.len() as u32 - 1)
    }
    fn record(&mut self, _id: u32, _value: u64) {}
    fn increment(&mut self, _id: u32, _delta: i64) {}
}

#[wasm_bindgen_test]
fn labels_in_wasm() {
    let host = FakeHost::new()
        .with_i64(&["response", "code"], 200)
        .with_str(&["request", "protocol"], "HTTP/2");
    let mut plugin = StatsPlugin::new(Direction::Outbound);
    let mut m = Names::default();
    plugin.configure(
        &host,
        &mut m,
        br#"{"metrics":[{"name":"requests_total","dimensions":{"proto":"request.protocol"}}]}"#,
    );
    let mut s = Stream::new();
    plugin.on_request_headers(&host, &mut s);
    plugin.on_log(&host, &mut m, &mut s);
    let name =
        m.0.iter()
            .find(|n| n.ends_with("istio_requests_total"))
            .unwrap();
    assert!(name.starts_with("reporter=.=source;.;source_workload=.=unknown;.;"));
    assert!(name.contains(";.;response_code=.=200;.;grpc_response_status=.=;.;proto=.=HTTP/2;.;"));
}
