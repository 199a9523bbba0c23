//! istio/proxy `test/envoye2e/stats_plugin/stats_test.go` `TestStatsParserRegression`
//! (release-1.13 … 1.17), the regression test for envoyproxy/envoy-wasm#497: the client listener
//! carries only the stats filter, first configured with `{}`; one second later a listener update
//! (same `vm_id` `stats_outbound0`, so the same VM) delivers `client_config_customized.yaml.tmpl`;
//! one more second passes. The test asserts only that Envoy survives: no step fails.
//!
//! Here: the update's configuration is the branch's `client_config_customized.yaml.tmpl` as the
//! golden scenario `customized_client_overrides_definitions_drop` (1.17) or
//! `v1_1x_customized_client_redefined_requests_total` / `v1_16_customized_…` holds it verbatim;
//! listener0 is the same chain with the stats configuration `{}` (the test renders listener0
//! while `StatsFilterClientConfig` is still the literal `"{}"`, on every branch). The proxy
//! (that branch's Envoy profile) loads listener0, the clock runs 1 s, listener1 is loaded into the
//! same proxy (the harness reuses a live VM with the same vm_id, vm configuration and code and
//! starts a new root context configured with the new JSON, as cpp-host does for a changed plugin
//! configuration), and the clock runs 1 s more. "Envoy survives" becomes: both loads succeed,
//! the update really shares the running VM, and no trap or poisoned VM appears.

use e2e_tests::prom::golden;
use envoyfilter_model::chain::{FilterKind, WasmCode};
use harness::cli::load::describe_failure;
use harness::cli::setup::{prepare, Setup};
use harness::profile::Profile;
use harness::proxy::Proxy;
use harness::replay::chains::resolve_code;

const SECOND_NS: i64 = 1_000_000_000;

fn setup(scenario: &str) -> Setup {
    let s = golden::Scenario::load(&golden::istio_dir().join(scenario)).expect("scenario loads");
    prepare(&s.setup_args(), &mut |_| {}).unwrap_or_else(|e| panic!("{scenario}: {e}"))
}

/// The stats filter's configuration JSON in a setup's chains (outbound HTTP).
fn stats_configuration(s: &Setup) -> String {
    s.chains
        .chains
        .http
        .values()
        .flatten()
        .find_map(|f| match &f.kind {
            FilterKind::Wasm(w) if f.name == "istio.stats" => {
                Some(String::from_utf8_lossy(&w.configuration).into_owned())
            }
            _ => None,
        })
        .expect("an istio.stats Wasm filter")
}

fn assert_alive(p: &mut Proxy, when: &str) {
    let traps = p.take_traps();
    assert!(traps.is_empty(), "{when}: traps {traps:?}");
    for i in 0..p.plugins().len() {
        assert!(p.poisoned(i).is_none(), "{when}: plugin {i} poisoned");
    }
}

/// listener0 (`{}`) is loaded, then the scenario's customized configuration arrives as a
/// listener update after 1 s.
fn update_survives(customized_scenario: &str) {
    let second = setup(customized_scenario);
    assert!(
        stats_configuration(&second).contains("definitions"),
        "the update must carry client_config_customized"
    );
    // listener0: the same chain, the stats filter configured with the test's literal "{}".
    let mut first = second.chains.chains.clone();
    for filters in first.http.values_mut() {
        for f in filters.iter_mut() {
            if let FilterKind::Wasm(w) = &mut f.kind {
                if f.name == "istio.stats" {
                    w.configuration = b"{}".to_vec();
                }
            }
        }
    }
    let wasm_dir = second.wasm_dir.clone();
    let resolver = |code: &WasmCode| -> Result<Vec<u8>, String> {
        let module = resolve_code(code, &wasm_dir)?;
        std::fs::read(&module.path).map_err(|e| format!("{}: {e}", module.path.display()))
    };
    let profile = Profile::from_proxy_version(&second.version.full).expect("known release");
    let mut proxy = Proxy::new(profile, second.node.clone());
    let report = proxy
        .load(&first, &resolver)
        .unwrap_or_else(|e| panic!("listener0 rejected: {}", describe_failure(&e)));
    assert!(report.plugins.iter().all(|p| p.skipped.is_none()));
    assert_alive(&mut proxy, "after listener0");

    // driver.Sleep{1s}
    proxy.set_clock(proxy.now() + SECOND_NS);
    assert_alive(&mut proxy, "after the first second");

    // driver.Update{Version: "1", Listeners: [listener1]}
    let update = proxy
        .load(&second.chains.chains, &resolver)
        .unwrap_or_else(|e| panic!("listener1 rejected: {}", describe_failure(&e)));
    let stats: Vec<_> = update
        .plugins
        .iter()
        .filter(|p| p.filter_name == "istio.stats")
        .collect();
    assert_eq!(stats.len(), 1, "{:?}", update.plugins);
    assert!(stats[0].skipped.is_none());
    assert!(
        stats[0].shared_vm,
        "same vm_id, code and vm configuration: the update configures a new root in the running VM"
    );
    assert_alive(&mut proxy, "after listener1");

    // driver.Sleep{1s}
    proxy.set_clock(proxy.now() + SECOND_NS);
    assert_alive(&mut proxy, "after the last second");
}

#[test]
fn parser_regression_1_17() {
    update_survives("customized_client_overrides_definitions_drop");
}

#[test]
fn parser_regression_1_16() {
    update_survives("v1_16_customized_client_overrides_definitions_drop");
}

#[test]
fn parser_regression_1_13_to_1_15() {
    // 1.13–1.15 share the test and its testdata; each runs on its own Envoy profile.
    for s in [
        "v1_13_customized_client_redefined_requests_total",
        "v1_14_customized_client_redefined_requests_total",
        "v1_15_customized_client_redefined_requests_total",
    ] {
        update_survives(s);
    }
}
