//! Replay throughput: N synthetic HTTP events (`harness gen-traffic`'s traffic, streamed, never
//! stored), one thread, through the 1.17 chains of Istio's default schema on the real plugins:
//! first istio.stats alone at its default config (the benchmark), then with attributegen
//! in front (the frozen `istio-default-1.17` set). Prints events/s and peak RSS (`VmHWM`, of the
//! whole process: the larger of the two), then criterion measurements of decoding alone and of
//! replaying a 10,000-event batch through the full set.
//!
//! `cargo bench -p harness --bench replay` (REPLAY_BENCH_EVENTS=N to change the 1,000,000).
//! Goal: ≥ 300,000 events/s.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use harness::cli::args::SetupArgs;
use harness::cli::load::{load_proxy, LoadFailure};
use harness::cli::setup::prepare;
use harness::proxy::Proxy;
use harness::replay::gen::GenReader;
use harness::replay::run::{peak_rss_kib, replay_source, EventSink, Summary};
use harness::replay::traffic::TrafficReader;
use harness::stream::{HttpExchange, TcpConnection};

struct Sink(Proxy);

impl EventSink for Sink {
    fn http(&mut self, x: &HttpExchange) -> Result<(), String> {
        let out = self.0.run_http(x);
        if !self.0.logs().is_empty() {
            self.0.clear_logs();
        }
        out.traps.first().map_or(Ok(()), |t| Err(t.to_string()))
    }
    fn tcp(&mut self, c: &TcpConnection) -> Result<(), String> {
        let out = self.0.run_tcp(c);
        self.0.clear_logs();
        out.traps.first().map_or(Ok(()), |t| Err(t.to_string()))
    }
}

const DEFAULT_SET: &str = "testdata/traffic/cli/istio-default-1.17";

/// The default set without attributegen: istio.stats (HTTP and TCP) at Istio's default config.
const STATS_ONLY: &[&str] = &[
    "testdata/traffic/cli/istio-default-1.17/stats-filter.yaml",
    "testdata/traffic/cli/istio-default-1.17/tcp-stats-filter.yaml",
];

fn proxy(filters: &[&str]) -> Proxy {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let args = SetupArgs {
        proxy_version: "1.17.8".into(),
        node: None,
        envoyfilter: filters.iter().map(|f| root.join(f)).collect(),
        wasm_dir: Some(xtask::plugins::ensure_built()),
        extra_stat_tags: Vec::new(),
    };
    let setup = prepare(&args, &mut |_| {}).unwrap_or_else(|e| panic!("setup: {e}"));
    match load_proxy(&setup, &mut |_| {}) {
        Ok((p, _)) => p,
        Err(LoadFailure::Setup(e)) => panic!("setup: {e}"),
        Err(LoadFailure::Plugin(e)) => panic!("plugin: {e}"),
    }
}

fn replay(sink: &mut Sink, events: u64) -> Summary {
    let mut summary = Summary::default();
    replay_source(
        "gen",
        GenReader::new(events),
        sink,
        &mut summary,
        &mut |p| panic!("{p}"),
    );
    summary
}

fn main() {
    let events: u64 = std::env::var("REPLAY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);

    let started = Instant::now();
    let decoded = TrafficReader::new(GenReader::new(events))
        .filter(|e| e.is_ok())
        .count();
    let decode_s = started.elapsed().as_secs_f64();
    println!(
        "decode only: {decoded} events in {decode_s:.2} s = {:.0} events/s",
        decoded as f64 / decode_s
    );

    for (label, filters) in [
        ("istio.stats alone, default config", STATS_ONLY),
        ("attributegen + istio.stats", &[DEFAULT_SET][..]),
    ] {
        let mut sink = Sink(proxy(filters));
        let summary = replay(&mut sink, events);
        assert_eq!(summary.events, events);
        assert_eq!(summary.events_failed, 0);
        let text = harness::stats_sink::prometheus::render(
            sink.0.stats(),
            &harness::stats_sink::TagExtractor::istio(17, &[]),
        );
        println!(
            "replay ({label}): {} events in {:.2} s = {:.0} events/s on one core (goal 300000); peak RSS so far {} MiB; exposition {} bytes",
            summary.events,
            summary.wall.as_secs_f64(),
            summary.events_per_second(),
            peak_rss_kib().map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            text.len()
        );
    }

    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let batch = 10_000u64;
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(batch));
    group.bench_function("decode 10k lines", |b| {
        b.iter(|| black_box(TrafficReader::new(GenReader::new(batch)).count()))
    });
    let mut sink = Sink(proxy(&[DEFAULT_SET]));
    group.bench_function("replay 10k http events", |b| {
        b.iter(|| black_box(replay(&mut sink, batch).events))
    });
    group.finish();
    c.final_summary();
}
