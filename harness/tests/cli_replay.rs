//! `harness replay` end to end: the real binary, the real plugins (built by
//! `xtask::plugins::ensure_built`), hand-derived expectations. The expectations are written for
//! Istio's default metric schema, frozen in `testdata/traffic/cli/istio-default-1.17/`.
//!
//! How the numbers in `testdata/expected/inbound_basic.prom` follow from
//! `testdata/traffic/cli/inbound_basic.jsonl` (default node: webapp sidecar, Istio 1.17.8):
//! * Series: (200, "-") ×3 (line 1, repeat 3), (201, "-") ×1, (503, "UO") ×1 (flags UO = 0x80,
//!   printed back as "UO"). No peer and no TLS: every source_* label is "unknown" except
//!   source_canonical_revision "latest" (no labels → "latest", stats-spec §3.2);
//!   connection_security_policy "none" (inbound, connection.mtls false); principals "unknown".
//!   destination_* come from the node; destination_service = the node's canonical name "webapp"
//!   because the shipped inbound config disables the Host fallback (§3.3), and no cluster
//!   metadata → destination_service_name = "webapp".
//! * Label order: the Istio 1.17 bootstrap (response_code first, then DefaultStatTags; §5.2).
//! * request_bytes = header bytes (name + value lengths) + body. GET: ":authority"
//!   "webapp:8080" 10+11, ":path" "/api/catalog" 5+12, ":method" "GET" 7+3, ":scheme" "http"
//!   7+4 = 59. POST: 60 + 90 body = 150. response_bytes: ":status" 7+3 = 10, + 140 body = 150 for
//!   the 200s; 10 for the others. No MX headers inbound without a peer.
//! * Histograms (circllhist, §5.5): v in [10,100) is bin [v, v+1), v in [100,1000) is
//!   [v - v%10, +10); the sample lands in the first bound ≥ the bin's upper edge and adds the
//!   bin midpoint to _sum. 12 → le 25, sum 12.5 each (×3 = 37.5); 20 → le 25, 20.5;
//!   30 → [30,31) → le 50, 30.5; 59 → le 100, 59.5 (×3 = 178.5); 150 → le 250, 155
//!   (×3 = 465); 10 → le 25, 10.5. (Sizes like 110 are avoided: the bin edge 1.1×10² is not
//!   exact in doubles and the sum prints as 115.00000000000001…, as Envoy would.)
//! * metric_cache_count: 3 distinct label vectors → miss 3; hits are flushed per 100 (§7.1) → 0.
//! * attributegen (shipped responseClass rules) defines its two error counters, both 0;
//!   istio_build tag = the node's ISTIO_VERSION.

mod cli_common;
use cli_common::*;

#[test]
fn inbound_sample_matches_the_hand_derived_exposition() {
    let run = replay(&[
        "--envoyfilter",
        ISTIO_DEFAULT_1_17,
        "testdata/traffic/cli/inbound_basic.jsonl",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_text_eq(&run.stdout, &expected("inbound_basic.prom"));
    assert!(
        run.stderr
            .contains("replayed 5 events (5 http, 0 tcp) from 3 lines; skipped 0 bad lines"),
        "{}",
        run.stderr
    );
}

#[test]
fn stdin_dash_reads_standard_input() {
    let input = std::fs::read(root().join("testdata/traffic/cli/inbound_basic.jsonl")).unwrap();
    let dir = wasm_dir();
    let run = harness(
        &[
            "replay",
            "--wasm-dir",
            dir.to_str().unwrap(),
            "--envoyfilter",
            ISTIO_DEFAULT_1_17,
            "-",
        ],
        Some(&input),
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_text_eq(&run.stdout, &expected("inbound_basic.prom"));
}

/// The same five events with bad lines in between: a malformed line, a field of the wrong
/// type, an unknown response flag, an unknown kind. Every good line still counts (the output
/// is exactly the clean sample's), each bad line is named with its number and reason, and the
/// exit code is 0 (bad traffic lines are not a setup failure).
#[test]
fn bad_lines_are_reported_and_no_good_line_is_lost() {
    let clean =
        std::fs::read_to_string(root().join("testdata/traffic/cli/inbound_basic.jsonl")).unwrap();
    let good: Vec<&str> = clean.lines().filter(|l| !l.trim().is_empty()).collect();
    let text = [
        good[0],
        r#"{"kind":"http","direction":"inbound""#,
        good[1],
        r#"{"kind":"http","direction":"inbound","duration_ms":"fast"}"#,
        r#"{"kind":"http","direction":"inbound","response":{"flags":"UO,XYZ"}}"#,
        r#"{"kind":"udp","direction":"inbound"}"#,
        good[2],
        r#"{"kind":"http","direction":"inbound","colour":"red","repeat":0}"#,
    ]
    .join("\n");
    let dir = temp_dir("bad-lines");
    let path = dir.join("bad.jsonl");
    std::fs::write(&path, text).unwrap();
    let run = replay(&["--envoyfilter", ISTIO_DEFAULT_1_17, path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_text_eq(&run.stdout, &expected("inbound_basic.prom"));
    let p = path.display();
    for needle in [
        format!("{p}:2: skipped: EOF while parsing an object"),
        format!("{p}:4: skipped: duration_ms: invalid type: string \"fast\""),
        format!("{p}:5: skipped: response.flags: unknown response flag \"XYZ\""),
        format!("{p}:6: skipped: kind: expected \"http\", \"tcp\" or \"reload\", got \"udp\""),
        format!("{p}:8: warning: field \"colour\" is not part of the traffic format"),
        "replayed 5 events (5 http, 0 tcp) from 4 lines; skipped 4 bad lines".to_string(),
        "skipped by reason: EOF while parsing ×1, duration_ms ×1, kind ×1, response.flags ×1"
            .to_string(),
    ] {
        assert!(
            run.stderr.contains(&needle),
            "missing {needle:?} in:\n{}",
            run.stderr
        );
    }
}

/// `testdata/expected/outbound_tcp.counters.prom` from `testdata/traffic/cli/outbound_tcp.jsonl`:
/// * outbound 200 ×2 with peer catalog and TLS: source_* from the node (source_principal = the
///   upstream session's local SAN), destination_* from the peer, destination_service =
///   services[0].host, connection_security_policy "unknown" (never set outbound, §3.3).
/// * outbound 503 UO without a peer: destination workload/namespace/app/version/cluster
///   "unknown", destination_service_namespace "unknown" (it is the peer node's namespace, not the
///   service's), canonical revision "latest", principals "unknown" (no TLS).
/// * TCP outbound to mysql (peer via MX, found): received 1000 (downstream), sent 3000, opened 1,
///   closed 1; request_protocol "tcp", response_flags "-" (Envoy's response.flags is 0 on TCP).
/// * TCP inbound without peer or TLS: destination from the node, destination_service = the
///   node's canonical name "webapp" (TCP never uses the Host fallback), policy "none";
///   received 10, sent 20.
/// * Order: series sort by stat name; "reporter=.=destination" < "reporter=.=source", and for
///   the two HTTP series source_principal "spiffe…" < "unknown".
#[test]
fn outbound_http_counters_match_the_hand_derived_text() {
    let run = replay(&[
        "--envoyfilter",
        ISTIO_DEFAULT_1_17,
        "testdata/traffic/cli/outbound_tcp.jsonl",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let want = families(
        &expected("outbound_tcp.counters.prom"),
        &["istio_requests_total"],
    );
    assert_text_eq(&families(&run.stdout, &["istio_requests_total"]), &want);
}

/// The TCP families of the same file. Envoy's `response.flags` is `info.responseFlags()` for any
/// stream, so a clean TCP connection reads 0 and Istio prints `response_flags="-"`.
#[test]
fn tcp_counters_match_the_hand_derived_text() {
    let run = replay(&[
        "--envoyfilter",
        ISTIO_DEFAULT_1_17,
        "testdata/traffic/cli/outbound_tcp.jsonl",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let want = expected("outbound_tcp.counters.prom");
    assert_text_eq(&families(&run.stdout, &family_names(&want)), &want);
}

/// The book's operationId example (book-examples.md §2, §3): render the per-version set from
/// the book's IstioOperator (get_calls, upstream_operation) and attributegen EnvoyFilter, then
/// replay outbound GET/POST /items and GET /api/catalog plus one inbound GET.
/// * istio_get_calls: the GET events = 3 + 1 outbound + 1 inbound = 5; a definition without
///   dimensions has no labels → `istio_get_calls{} 5`.
/// * upstream_operation (outbound only, extracted because of --extra-stat-tags): getitems ×3,
///   createitem ×1, and "unknown" for /api/catalog (no rule matched → attribute absent → CEL
///   error → "unknown", §4.3); it is printed last (extra tags follow DefaultStatTags).
#[test]
fn book_operation_id_and_get_calls() {
    let out = temp_dir("book-render");
    let render = harness(
        &[
            "render",
            "--istio-operator",
            "testdata/traffic/cli/book-operator.yaml",
            "--attributegen",
            "testdata/traffic/cli/book-attributegen.yaml",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(render.code, 0, "stderr: {}", render.stderr);
    assert!(
        render.stderr.contains("extraStatTags"),
        "the renderer warns about the tag: {}",
        render.stderr
    );
    let filters = out.join("1.17");
    let run = replay(&[
        "--envoyfilter",
        filters.to_str().unwrap(),
        "--extra-stat-tags",
        "upstream_operation",
        "testdata/traffic/cli/book_items.jsonl",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(
        run.stdout
            .contains("# TYPE istio_get_calls counter\nistio_get_calls{} 5\n"),
        "{}",
        run.stdout
    );
    let requests = families(&run.stdout, &["istio_requests_total"]);
    let ops: Vec<(String, String)> = requests
        .lines()
        .filter(|l| l.contains("reporter=\"source\""))
        .map(|l| {
            let op = l
                .split("upstream_operation=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = l.rsplit(' ').next().unwrap();
            (op.to_string(), value.to_string())
        })
        .collect();
    let mut ops = ops;
    ops.sort();
    assert_eq!(
        ops,
        [("createitem", "1"), ("getitems", "3"), ("unknown", "1")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for l in requests
        .lines()
        .filter(|l| l.contains("reporter=\"source\""))
    {
        assert!(
            l.contains("destination_canonical_revision=\"latest\",upstream_operation=\""),
            "{l}"
        );
    }
    // Inbound has no such dimension.
    assert!(requests
        .lines()
        .filter(|l| l.contains("reporter=\"destination\""))
        .all(|l| !l.contains("upstream_operation")));
}

/// The demo command of the README prints the four standard HTTP families and the TCP ones.
#[test]
fn demo_prints_the_standard_families() {
    let run = replay(&[
        "--proxy-version",
        "1.17.8",
        "--node",
        "testdata/nodes/webapp.yaml",
        "testdata/traffic/demo.jsonl",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    for family in [
        "# TYPE istio_requests_total counter",
        "# TYPE istio_request_duration_milliseconds histogram",
        "# TYPE istio_request_bytes histogram",
        "# TYPE istio_response_bytes histogram",
        "# TYPE istio_tcp_sent_bytes_total counter",
        "# TYPE istio_tcp_received_bytes_total counter",
        "# TYPE istio_tcp_connections_opened_total counter",
        "# TYPE istio_tcp_connections_closed_total counter",
    ] {
        assert!(run.stdout.contains(family), "{family} missing");
    }
    // 18 + 2 + 1 inbound calls from the gateway; the overflow shows up with its flag.
    assert!(run.stdout.contains("response_flags=\"UO\""));
    assert!(
        run.stderr
            .contains("replayed 49 events (46 http, 3 tcp) from 11 lines"),
        "{}",
        run.stderr
    );
}

/// The ingress gateway's view (`testdata/traffic/gateway.jsonl`, GATEWAY context, reporter
/// "source" as on Istio gateways): 18 + 3 + 1 calls reach webapp (peer known from the response
/// metadata), one times out upstream (UT, no peer → destination "unknown").
#[test]
fn gateway_traffic_reports_as_source() {
    let run = replay(&[
        "--node",
        "testdata/nodes/ingressgateway.yaml",
        "testdata/traffic/gateway.jsonl",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let requests = families(&run.stdout, &["istio_requests_total"]);
    let summary: Vec<String> = requests
        .lines()
        .skip(1)
        .map(|l| {
            let label = |name: &str| {
                l.split(&format!(",{name}=\""))
                    .nth(1)
                    .or_else(|| l.split(&format!("{{{name}=\"")).nth(1))
                    .and_then(|v| v.split('"').next())
                    .unwrap_or("?")
                    .to_string()
            };
            format!(
                "{} {} {} {} {}",
                label("response_code"),
                label("reporter"),
                label("destination_workload"),
                label("response_flags"),
                l.rsplit(' ').next().unwrap()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "504 source unknown UT 1",
            "200 source webapp - 18",
            "404 source webapp - 1",
            "500 source webapp - 3",
        ]
    );
    assert!(requests.contains("source_workload=\"istio-ingressgateway\""));
}

/// The book's own attributegen EnvoyFilter names the null-VM plugin `envoy.wasm.attributegen`:
/// it runs as our attributegen_plugin.wasm, and stderr says so.
#[test]
fn null_vm_names_are_substituted_with_a_note() {
    let run = replay(&[
        "--envoyfilter",
        "testdata/traffic/cli/istio-default-1.17/stats-filter.yaml",
        "--envoyfilter",
        "testdata/traffic/cli/book-attributegen.yaml",
        "testdata/traffic/cli/book_items.jsonl",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains(
            "note: null-VM code \"envoy.wasm.attributegen\" runs as our attributegen_plugin.wasm"
        ),
        "{}",
        run.stderr
    );
    // No Wasm attributegen in the default file set here, so the type_* counters come from the
    // book's filter alone; it ran on the outbound events.
    assert!(run
        .stdout
        .contains("type_runtime_error_count{wasm_filter=\"attributegen\"} 0"));
}

/// Every supported proxy version replays with its own shipped EnvoyFilters (the default
/// `envoyfilters/1.<minor>/`): the three inbound series of the sample appear each time, and
/// Envoy ≤ 1.23 (Istio ≤ 1.15) ends every family with a blank line while newer ones do not.
#[test]
fn every_proxy_version_replays_with_its_shipped_filters() {
    for (version, blank_lines) in [
        ("1.13.9", true),
        ("1.14.6", true),
        ("1.15.7", true),
        ("1.16.7", false),
        ("1.17.8", false),
    ] {
        let run = replay(&[
            "--proxy-version",
            version,
            "testdata/traffic/cli/inbound_basic.jsonl",
        ]);
        assert_eq!(run.code, 0, "{version}: {}", run.stderr);
        let series = run
            .stdout
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .count();
        assert_eq!(series, 3, "{version}");
        assert!(
            run.stdout
                .contains("istio_build{component=\"proxy\",tag=\"1.17.8\"} 1"),
            "{version}: istio_build reports the node's ISTIO_VERSION, not --proxy-version"
        );
        assert_eq!(run.stdout.contains("\n\n"), blank_lines, "{version}");
    }
}

/// `harness render` without `--out` prints every file as one YAML stream.
#[test]
fn render_prints_to_stdout_without_out() {
    let run = harness(
        &[
            "render",
            "--istio-operator",
            "envoyfilters/schema/istio-operator.yaml",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for minor in 13..=17 {
        assert!(
            run.stdout
                .contains(&format!("---\n# 1.{minor}/stats-filter.yaml\n")),
            "1.{minor}"
        );
        assert!(
            run.stdout
                .contains(&format!("---\n# 1.{minor}/tcp-stats-filter.yaml\n")),
            "1.{minor}"
        );
    }
    assert!(run.stdout.contains("kind: EnvoyFilter"));
}

/// Every proxy version's shipped set carries the book schema: attributegen (getitems /
/// createitem / deleteitem for /items) before the outbound stats filter, whose requests_total
/// gains `upstream_operation` (a label through the webapp node's extraStatTags).
/// `outbound_items.jsonl`: GET /items ×3, POST /items ×2, DELETE /items ×1, PUT /items ×1 and
/// GET /other ×1 — so getitems 3, createitem 2, deleteitem 1 and, for PUT and /other, which no
/// rule matches, `unknown` 2 (the dimension's CEL attribute is absent → "unknown"). POST answers
/// 201, the rest 200, so `unknown` is one series of 2.
#[test]
fn every_proxy_version_labels_outbound_items_calls_with_upstream_operation() {
    for version in ["1.13.9", "1.14.6", "1.15.7", "1.16.7", "1.17.8"] {
        let run = replay(&[
            "--proxy-version",
            version,
            "testdata/traffic/cli/outbound_items.jsonl",
        ]);
        assert_eq!(run.code, 0, "{version}: {}", run.stderr);
        let count = |op: &str| -> u64 {
            run.stdout
                .lines()
                .filter(|l| l.starts_with("istio_requests_total{"))
                .filter(|l| l.contains(&format!("upstream_operation=\"{op}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        assert_eq!(count("getitems"), 3, "{version}: {}", run.stdout);
        assert_eq!(count("createitem"), 2, "{version}");
        assert_eq!(count("deleteitem"), 1, "{version}");
        assert_eq!(count("unknown"), 2, "{version}");
        // The book's get_calls definition: 3 GET /items + 1 GET /other.
        assert!(
            run.stdout.contains("istio_get_calls{} 4"),
            "{version}: {}",
            run.stdout
        );
    }
}

/// `--expect`: the hand-derived `inbound_basic.prom` checked by the CLI itself (exit 0, one
/// summary line), and the same expectation with one value changed by hand (the 201 series
/// counted 2 instead of 1): exit 3, the difference named on stderr, the full text still on
/// stdout.
#[test]
fn expect_checks_the_output_against_a_golden_text() {
    let args = [
        "--envoyfilter",
        ISTIO_DEFAULT_1_17,
        "--expect",
        "testdata/expected/inbound_basic.prom",
        "testdata/traffic/cli/inbound_basic.jsonl",
    ];
    let run = replay(&args);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(
        run.stderr
            .contains("expect testdata/expected/inbound_basic.prom: ok (206 series in 8 families)"),
        "{}",
        run.stderr
    );

    let golden = expected("inbound_basic.prom");
    let target = golden
        .lines()
        .find(|l| l.starts_with("istio_requests_total{response_code=\"201\""))
        .expect("the 201 series");
    assert!(target.ends_with("} 1"), "{target}");
    let changed = golden.replace(target, &format!("{}2", &target[..target.len() - 1]));
    let dir = temp_dir("expect-mismatch");
    let path = dir.join("want.prom");
    std::fs::write(&path, changed).unwrap();
    let mut args = args;
    args[3] = path.to_str().unwrap();
    let run = replay(&args);
    assert_eq!(run.code, 3, "stderr: {}", run.stderr);
    assert!(run.stderr.contains(": 1 difference\n"), "{}", run.stderr);
    assert!(
        run.stderr.contains("response_code=\"201\"") && run.stderr.contains(": expected 2, got 1"),
        "{}",
        run.stderr
    );
    assert_text_eq(&run.stdout, &golden);
}

/// A partial expectation pins only the families it mentions (here `istio_requests_total` of the
/// outbound sample, as `outbound_tcp.counters.prom` does); an unreadable one is a usage error
/// named with its line, found before any traffic is replayed (exit 1).
#[test]
fn expect_compares_only_the_families_it_mentions_and_rejects_bad_files() {
    let run = replay(&[
        "--envoyfilter",
        ISTIO_DEFAULT_1_17,
        "--no-output",
        "--expect",
        "testdata/expected/outbound_tcp.counters.prom",
        "testdata/traffic/cli/outbound_tcp.jsonl",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(run.stderr.contains(": ok ("), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    let dir = temp_dir("expect-bad");
    let path = dir.join("bad.prom");
    std::fs::write(
        &path,
        "# TYPE istio_requests_total counter\nistio_requests_total{a=1} 2\n",
    )
    .unwrap();
    let run = replay(&[
        "--envoyfilter",
        ISTIO_DEFAULT_1_17,
        "--expect",
        path.to_str().unwrap(),
        "testdata/traffic/cli/outbound_tcp.jsonl",
    ]);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("--expect {}: line 2: ", path.display())),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("replayed"), "{}", run.stderr);
}
