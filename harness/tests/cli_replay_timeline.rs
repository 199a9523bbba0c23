//! `harness replay` with the traffic-format additions that put time inside a stream and between
//! streams: timed gRPC batches (`grpc_messages[].at_ms`), a stop with the stream still open
//! (`stop_after_ms`), and listener updates (`{"kind":"reload"}`). Real binary, real stats
//! plugin, hand-derived expectations.
//!
//! Setup: Istio's TestStatsGrpcStream client (testdata/istio/grpc_stream_client_midstream):
//! outbound `istio.stats` with `tcp_reporting_duration: "1s"`, so the root ticks 1 s, 2 s, 3 s …
//! after the clock starts, which is the first event's start. On a tick the plugin reports every
//! stream it has seen response headers for, recording only the recurrent stats: the gRPC
//! message counters, as deltas since its last report (stats-spec §2, `plugin.cc:573-589`);
//! counters skip zero deltas. `onLog` reports the rest and `istio_requests_total`.

mod cli_common;
use cli_common::*;

use serde_json::{json, Value};

const SCENARIO: &str = "testdata/istio/grpc_stream_client_midstream";

/// The scenario's bidi stream (peer, upstream, route), with `fields` replacing its timing.
fn stream(fields: Value) -> String {
    let text = std::fs::read_to_string(root().join(SCENARIO).join("traffic.jsonl")).unwrap();
    let mut line: Value = serde_json::from_str(text.trim()).unwrap();
    let obj = line.as_object_mut().unwrap();
    for k in ["grpc_messages", "stop_after_ms", "duration_ms", "start"] {
        obj.remove(k);
    }
    for (k, v) in fields.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    line.to_string()
}

/// Replays `lines` through the scenario's node and EnvoyFilter.
fn run(name: &str, lines: &[String]) -> Run {
    let dir = temp_dir(name);
    let traffic = dir.join("traffic.jsonl");
    std::fs::write(&traffic, lines.join("\n") + "\n").unwrap();
    let node = format!("{SCENARIO}/node.yaml");
    let ef = format!("{SCENARIO}/envoyfilter.yaml");
    replay(&[
        "--proxy-version",
        "1.17.8",
        "--node",
        &node,
        "--envoyfilter",
        &ef,
        traffic.to_str().unwrap(),
    ])
}

/// The sum of the samples of family `name` (`None`: no sample at all).
fn value(text: &str, name: &str) -> Option<f64> {
    let samples: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

fn messages(text: &str) -> (Option<f64>, Option<f64>) {
    (
        value(text, "istio_request_messages_total"),
        value(text, "istio_response_messages_total"),
    )
}

/// The Istio stream: 3/13 at once, 5/14 more at 2 s, closed at 4 s.
fn batches() -> Value {
    json!([
        {"request": 3, "response": 13, "at_ms": 0},
        {"request": 5, "response": 14, "at_ms": 2000}
    ])
}

#[test]
fn a_stop_inside_the_stream_shows_what_the_ticks_reported() {
    // Stop at 1.5 s: the 1 s tick saw 3/13 (the first batch passed grpc_stats at 0 ms, after
    // the headers). No log phase: istio_requests_total has no non-zero sample.
    let r = run(
        "stop-1500",
        &[stream(
            json!({"duration_ms": 4000, "grpc_messages": batches(), "stop_after_ms": 1500}),
        )],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(messages(&r.stdout), (Some(3.0), Some(13.0)), "{}", r.stdout);
    assert_eq!(value(&r.stdout, "istio_requests_total").unwrap_or(0.0), 0.0);
    assert!(
        r.stderr.contains("stopped inside the open stream of")
            && r.stderr.contains("traffic.jsonl:1"),
        "{}",
        r.stderr
    );

    // Stop at 2.5 s: the 2 s tick fires before the batch due at the same instant (documented
    // order), so it reports a zero delta (skipped); the second batch is not reported yet.
    let r = run(
        "stop-2500",
        &[stream(
            json!({"duration_ms": 4000, "grpc_messages": batches(), "stop_after_ms": 2500}),
        )],
    );
    assert_eq!(messages(&r.stdout), (Some(3.0), Some(13.0)), "{}", r.stdout);

    // Stop at 3.5 s: the 3 s tick reports the delta 5/14: totals 8/27.
    let r = run(
        "stop-3500",
        &[stream(
            json!({"duration_ms": 4000, "grpc_messages": batches(), "stop_after_ms": 3500}),
        )],
    );
    assert_eq!(messages(&r.stdout), (Some(8.0), Some(27.0)), "{}", r.stdout);

    // Stop at 0.9 s: no tick yet, nothing reported, so no message series at all.
    let r = run(
        "stop-900",
        &[stream(
            json!({"duration_ms": 4000, "grpc_messages": batches(), "stop_after_ms": 900}),
        )],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(messages(&r.stdout), (None, None), "{}", r.stdout);
}

#[test]
fn a_timed_stream_that_ends_reports_its_totals_once() {
    // Ticks at 1, 2, 3 s report 3/13, 0/0, 5/14; onLog at 4 s reports the remaining delta 0/0
    // and the one request. The same totals as the untimed batches (summed from the headers on).
    let timed = run(
        "timed-end",
        &[stream(
            json!({"duration_ms": 4000, "grpc_messages": batches()}),
        )],
    );
    let untimed = run(
        "untimed-end",
        &[stream(json!({"duration_ms": 4000, "grpc_messages": [
            {"request": 3, "response": 13}, {"request": 5, "response": 14}
        ]}))],
    );
    for r in [&timed, &untimed] {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(messages(&r.stdout), (Some(8.0), Some(27.0)), "{}", r.stdout);
        // The completed stream: 1 request (plus the zero-valued phantom series the ticks
        // defined with response_code 0 in the timed case, stats-spec §2).
        assert_eq!(value(&r.stdout, "istio_requests_total"), Some(1.0));
    }
    // An untimed batch and timed ones mix: 2/2 from the headers on, +1/1 at 500 ms; stop at
    // 1.2 s after the 1 s tick: 3/3.
    let r = run(
        "mixed",
        &[stream(
            json!({"duration_ms": 4000, "stop_after_ms": 1200, "grpc_messages": [
                {"request": 2, "response": 2}, {"request": 1, "response": 1, "at_ms": 500}
            ]}),
        )],
    );
    assert_eq!(messages(&r.stdout), (Some(3.0), Some(3.0)), "{}", r.stdout);
}

#[test]
fn lines_after_a_stop_are_skipped_and_counted() {
    let done = stream(json!({"duration_ms": 10}));
    let r = run(
        "after-stop",
        &[
            done.clone(),
            stream(json!({"duration_ms": 4000, "grpc_messages": batches(), "stop_after_ms": 1500})),
            String::new(),
            done.clone(),
            r#"{"kind":"reload"}"#.to_string(),
            "not json".to_string(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Line 1 completed (1 request); line 2 stopped the replay; 4, 5 and 6 are skipped (the
    // blank line 3 is skipped silently, as always).
    assert_eq!(value(&r.stdout, "istio_requests_total"), Some(1.0));
    for line in [4, 5, 6] {
        assert!(
            r.stderr.contains(&format!(
                "traffic.jsonl:{line}: skipped: stopped: the replay stopped inside the open stream of "
            )),
            "line {line}: {}",
            r.stderr
        );
    }
    assert!(
        r.stderr
            .contains("replayed 2 events (2 http, 0 tcp) from 2 lines; skipped 3 bad lines"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("skipped by reason: stopped ×3"),
        "{}",
        r.stderr
    );
}

#[test]
fn reloads_keep_the_counters_of_the_stats_store() {
    // 2 requests, a reload into new VMs, 3 requests, a reload into the running VMs, 1 request:
    // istio_requests_total = 6 whatever the reloads. Each root starts with an empty metric
    // cache: the first request on each of the 3 roots is a miss → metric_cache_count miss 3.
    let req = stream(json!({"duration_ms": 10}));
    let mut lines = vec![req.clone(), req.clone()];
    lines.push(r#"{"kind":"reload","vm":"new"}"#.into());
    lines.extend([req.clone(), req.clone(), req.clone()]);
    lines.push(r#"{"kind":"reload","vm":"same"}"#.into());
    lines.push(req.clone());
    let r = run("reloads", &lines);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        value(&r.stdout, "istio_requests_total"),
        Some(6.0),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("metric_cache_count{cache=\"miss\",wasm_filter=\"stats_filter\"} 3"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("istio_build{component=\"proxy\",tag=\"1.5-dev\"} 1"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("; 2 reloads"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("replayed 6 events (6 http, 0 tcp) from 8 lines; skipped 0 bad lines"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_reload_inside_a_tick_period_restarts_the_timer() {
    // Clock starts at 0 with the first (short) request; the root would tick at 1 s. A reload
    // at 0.6 s replaces the root: the new root's timer runs from 0.6 s (ticks at 1.6 s, 2.6 s).
    // A stream from 0.7 s with 3/13 at once, stopped 1 s in (1.7 s): the 1.6 s tick saw it.
    // Stopped at 0.8 s in (1.5 s) instead: no tick of the new root yet → nothing beyond the
    // zero-valued message series the first (gRPC, message-less) request defined at its onLog.
    let lines = |stop: u32| {
        vec![
            stream(json!({"start": "2020-01-01T00:00:00Z", "duration_ms": 10})),
            r#"{"kind":"reload","start":"2020-01-01T00:00:00.600Z"}"#.to_string(),
            stream(
                json!({"start": "2020-01-01T00:00:00.700Z", "duration_ms": 4000,
                "grpc_messages": [{"request": 3, "response": 13, "at_ms": 0}],
                "stop_after_ms": stop}),
            ),
        ]
    };
    let r = run("reload-timer-1000", &lines(1000));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(messages(&r.stdout), (Some(3.0), Some(13.0)), "{}", r.stdout);
    let r = run("reload-timer-800", &lines(800));
    assert_eq!(messages(&r.stdout), (Some(0.0), Some(0.0)), "{}", r.stdout);
}

#[test]
fn bad_timing_and_reload_fields_are_reported_with_line_and_reason() {
    let good = stream(json!({"duration_ms": 10}));
    let lines = vec![
        good.clone(), // 1
        stream(json!({"duration_ms": 100, "grpc_messages": [{"request": 1, "at_ms": 150}]})), // 2
        stream(json!({"duration_ms": 100, "grpc_messages": [{"request": 1, "at_ms": -1}]})), // 3
        stream(json!({"duration_ms": 100, "grpc_messages": [
            {"request": 1, "at_ms": 50}, {"request": 1, "at_ms": 20}]})), // 4
        stream(json!({"duration_ms": 100, "stop_after_ms": 100})), // 5
        stream(json!({"duration_ms": 100, "stop_after_ms": 10, "repeat": 2})), // 6
        stream(json!({"duration_ms": 100, "stop_after_ms": "soon"})), // 7
        stream(json!({"duration_ms": 100, "grpc_messages": [{"at_ms": "now"}]})), // 8
        r#"{"kind":"reload","vm":"old"}"#.to_string(), // 9
        r#"{"kind":"reload","start":"later"}"#.to_string(), // 10
        r#"{"kind":"reload","colour":"red"}"#.to_string(), // 11: warning
        good.clone(), // 12
    ];
    let r = run("bad-timing", &lines);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reason = |line: usize, start: &str| {
        let prefix = format!("traffic.jsonl:{line}: skipped: {start}");
        assert!(
            r.stderr.lines().any(|l| l.contains(&prefix)),
            "line {line}: want {start:?} in\n{}",
            r.stderr
        );
    };
    reason(
        2,
        "grpc_messages[0].at_ms: 150 is after the stream's end (duration_ms 100)",
    );
    reason(3, "grpc_messages[0].at_ms: must be a number ≥ 0, got -1");
    reason(
        4,
        "grpc_messages[1].at_ms: 20 is before the previous timed batch",
    );
    reason(
        5,
        "stop_after_ms: 100 is not before the stream's end (duration_ms 100)",
    );
    reason(
        6,
        "stop_after_ms: the replay stops inside this stream, so it cannot repeat",
    );
    reason(7, "stop_after_ms: invalid type: string \"soon\"");
    reason(8, "grpc_messages[0].at_ms: invalid type: string \"now\"");
    reason(9, "vm: unknown variant `old`");
    reason(10, "start: invalid RFC 3339 time");
    assert!(
        r.stderr.contains(
            "traffic.jsonl:11: warning: field \"colour\" is not part of the traffic format"
        ),
        "{}",
        r.stderr
    );
    // Lines 1 and 12 ran; the reload on line 11 ran (with its warning).
    assert_eq!(value(&r.stdout, "istio_requests_total"), Some(2.0));
    assert!(
        r.stderr.contains(
            "replayed 2 events (2 http, 0 tcp) from 3 lines; skipped 9 bad lines; 0 events failed; 1 warnings"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("; 1 reloads"), "{}", r.stderr);
}
