//! The stats plugin reads values it drops at once (response code, sizes, duration, route and
//! cluster name, the peer id that keys its peer cache) into a 256-byte buffer it lends the host
//! through `malloc`, instead of an allocation it frees right after
//! (`proxy_attributes::host::envoy::scratch`). Longer values, and the peer read nested inside the
//! id read on a peer-cache miss, must take an ordinary allocation and still give the same
//! series. Inputs and hand-derived expectations: `testdata/wasm/transient_reads/`.

use e2e_tests::prom::golden::{compare, replay, Scenario};

#[test]
fn long_and_short_values_read_in_place_give_the_same_series() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/wasm/transient_reads");
    let s = Scenario::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    s.check_files().unwrap_or_else(|e| panic!("{e}"));
    // The premise: the long values do not fit the lent buffer, the short one does.
    let traffic = std::fs::read_to_string(dir.join("traffic.jsonl")).expect("traffic");
    let ids: Vec<usize> = traffic
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["peer"]["id"].as_str().map_or(0, str::len)
        })
        .collect();
    assert_eq!(ids, [309, 6, 309, 309]);
    let text = replay(&s).unwrap_or_else(|e| panic!("{e}"));
    let x = e2e_tests::prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let problems = compare(&s.expected, &x);
    assert!(
        problems.is_empty(),
        "{}\n-- actual:\n{text}",
        problems.join("\n")
    );
}
