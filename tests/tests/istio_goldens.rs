//! Istio's stats/attributegen golden scenarios (`testdata/istio/<scenario>/`, see its README)
//! replayed end to end through the real `.wasm` plugins, the Prometheus text parsed and compared
//! with `expected.yaml`: exact names and values, label sets compared order-independently (Istio's
//! `driver.ExactStat` compares parsed metric families), every failing scenario reported by name
//! with a label diff. A scenario marked `known_failure` (a named defect elsewhere in the project)
//! still runs and prints its diff, without failing the test until it starts passing.

use e2e_tests::prom;
use e2e_tests::prom::golden::{self, compare, load_all, replay, Status};

#[test]
fn scenario_data_is_complete_and_decodes() {
    let scenarios = load_all(&golden::istio_dir());
    // stats-spec.md §9 lists 27 scenarios; the folder also holds a few extra ports.
    assert!(scenarios.len() >= 27, "only {} scenarios", scenarios.len());
    let mut problems = Vec::new();
    for s in &scenarios {
        if let Err(e) = s.check_files() {
            problems.push(format!("{}: {e}", s.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn istio_golden_scenarios() {
    let scenarios = load_all(&golden::istio_dir());
    let mut failures = Vec::new();
    let mut passed = Vec::new();
    let mut blocked = Vec::new();
    let mut known = Vec::new();
    for s in &scenarios {
        if let Status::Blocked(why) = &s.status {
            blocked.push(format!("{}: {why}", s.name));
            continue;
        }
        let text = match replay(s) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("== {}: replay failed: {e}", s.name));
                continue;
            }
        };
        let exposition = match prom::parse(&text) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("== {}: unparsable Prometheus text: {e}", s.name));
                continue;
            }
        };
        let problems = compare(&s.expected, &exposition);
        match (&s.known_failure, problems.is_empty()) {
            (None, true) => passed.push(s.name.clone()),
            (Some(why), true) => failures.push(format!(
                "== {}: passes now; remove its known_failure ({why})",
                s.name
            )),
            (Some(why), false) => known.push(format!("{}: {why}\n{}", s.name, problems.join("\n"))),
            (None, false) => failures.push(format!(
                "== {} ({}):\n{}\n-- actual text:\n{}",
                s.name,
                s.source,
                problems.join("\n"),
                text
            )),
        }
    }
    eprintln!(
        "istio goldens: {} passed, {} failed, {} known failures, {} blocked",
        passed.len(),
        failures.len(),
        known.len(),
        blocked.len()
    );
    for k in &known {
        eprintln!("known failure: {k}");
    }
    for b in &blocked {
        eprintln!("blocked: {b}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} runnable scenarios failed:\n{}",
        failures.len(),
        failures.len() + passed.len(),
        failures.join("\n\n")
    );
}

/// The comparator itself, on hand-written text: label order does not matter; a wrong value, a
/// missing or extra label, an extra series in an exact family, or a present `absent` family
/// are each reported.
#[test]
fn comparator_catches_each_kind_of_mismatch() {
    let dir = golden::istio_dir().join("default_http_server_requests_total_and_istio_build");
    let s = golden::Scenario::load(&dir).expect("scenario loads");
    let rq = &s.expected.series[0];
    // The expected labels printed in reverse order, as a differently ordered extractor would.
    let reversed: Vec<String> = rq
        .labels
        .iter()
        .rev()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    let good = format!(
        "# TYPE istio_requests_total counter\nistio_requests_total{{{}}} 10\n\n\
         # TYPE istio_build gauge\nistio_build{{tag=\"1.5-dev\",component=\"proxy\"}} 1\n",
        reversed.join(",")
    );
    let parsed = prom::parse(&good).unwrap();
    assert_eq!(compare(&s.expected, &parsed), Vec::<String>::new());

    let wrong_value = good.replace("} 10\n", "} 9\n");
    let p = compare(&s.expected, &prom::parse(&wrong_value).unwrap());
    assert!(p.iter().any(|m| m.contains("value")), "{p:?}");

    let wrong_label = good.replace("reporter=\"destination\"", "reporter=\"source\"");
    let p = compare(&s.expected, &prom::parse(&wrong_label).unwrap());
    assert!(
        p.iter()
            .any(|m| m.contains("~ reporter: expected \"destination\", got \"source\"")),
        "{p:?}"
    );

    let extra = format!("{good}istio_requests_total{{reporter=\"x\"}} 1\n");
    let p = compare(&s.expected, &prom::parse(&extra).unwrap());
    assert!(p.iter().any(|m| m.contains("unexpected series")), "{p:?}");

    let missing_build = good.replace("istio_build{tag=\"1.5-dev\",component=\"proxy\"} 1\n", "");
    let p = compare(&s.expected, &prom::parse(&missing_build).unwrap());
    assert!(p.iter().any(|m| m.contains("istio_build")), "{p:?}");

    let as_counter = good.replace("# TYPE istio_build gauge", "# TYPE istio_build counter");
    let p = compare(&s.expected, &prom::parse(&as_counter).unwrap());
    assert!(p.iter().any(|m| m.contains("expected gauge")), "{p:?}");

    let dir = golden::istio_dir().join("customized_client_overrides_definitions_drop");
    let c = golden::Scenario::load(&dir).unwrap();
    let with_hist = "# TYPE istio_request_duration_milliseconds histogram\n\
                     istio_request_duration_milliseconds_count{reporter=\"source\"} 10\n";
    let p = compare(&c.expected, &prom::parse(with_hist).unwrap());
    assert!(
        p.iter()
            .any(|m| m.contains("absent family istio_request_duration_milliseconds")),
        "{p:?}"
    );
}

/// The scenarios that need time inside or between streams really use the replay's timing
/// additions (so a passing run means what the README says): the two mid-stream scrapes stop
/// inside their stream after the first batch and before the second, and the parallel-reload
/// scenario interleaves reloads of both kinds with its requests.
#[test]
fn timed_scenarios_use_the_timing_events() {
    use harness::replay::traffic::{Event, TrafficReader};
    let read = |name: &str| {
        let s = golden::Scenario::load(&golden::istio_dir().join(name)).expect("scenario loads");
        assert_eq!(s.status, Status::Ready, "{name}");
        let file = std::fs::File::open(&s.traffic).expect("traffic");
        TrafficReader::new(std::io::BufReader::new(file))
            .map(|e| e.expect("clean traffic"))
            .collect::<Vec<_>>()
    };
    for name in [
        "grpc_stream_client_midstream",
        "grpc_stream_server_midstream",
    ] {
        let evs = read(name);
        assert_eq!(evs.len(), 1, "{name}");
        let plan = &evs[0].plan;
        let stop = plan.stop_after_ns.expect("stops inside the stream");
        // The 1 s tick (tcp_reporting_duration) falls between the first batch and the stop,
        // and the stop comes before the second batch.
        let first = plan.grpc_timeline.first().expect("timed batches");
        let second = plan.grpc_timeline.get(1).expect("two batches");
        assert!(
            first.at_ns < 1_000_000_000 && 1_000_000_000 < stop,
            "{name}"
        );
        assert!(stop < second.at_ns, "{name}");
        assert_eq!((first.requests, first.responses), (3, 13), "{name}");
    }
    let evs = read("parallel_config_reload_keeps_exact_counts");
    let requests = evs
        .iter()
        .filter(|e| matches!(e.event, Event::Http(_)))
        .count();
    let reloads: Vec<bool> = evs
        .iter()
        .filter_map(|e| match &e.event {
            Event::Reload(r) => Some(r.new_vm),
            _ => None,
        })
        .collect();
    assert_eq!(
        requests, 181,
        "the RequestCount expected.yaml is derived for"
    );
    assert_eq!(reloads.len(), 100);
    assert!(reloads.contains(&true) && reloads.contains(&false));
}
