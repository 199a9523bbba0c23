//! The shipped `envoyfilters/1.13 … 1.17/`: they are exactly the renderer's output for
//! `envoyfilters/schema/`, they pass validation, and istiod-style patching puts our filters where
//! they must be for every minor.
//!
//! Regenerate after changing the renderer or the schema:
//!   UPDATE_ENVOYFILTERS=1 cargo test -p envoyfilter-model --test shipped

use envoyfilter_model::chain::{Context, FilterKind, WasmCode};
use envoyfilter_model::load::{load_paths, LoadOptions};
use envoyfilter_model::patch::{build_chains, PatchOptions, Proxy};
use envoyfilter_model::render::{render, RenderInput, RenderOptions};
use envoyfilter_model::{shipped_dir, shipped_dir_for};

const GENERATED_FROM: &str =
    "envoyfilters/schema/istio-operator.yaml + envoyfilters/schema/attributegen.yaml";

fn shipped_input() -> RenderInput {
    let schema = shipped_dir().join("schema");
    RenderInput::from_files(
        Some(&schema.join("istio-operator.yaml")),
        Some(&schema.join("attributegen.yaml")),
        RenderOptions {
            generated_from: GENERATED_FROM.to_string(),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn shipped_set_matches_the_renderer() {
    let rendered = render(&shipped_input()).unwrap();
    // The shipped schema is Istio's defaults with prometheus.enabled=false: nothing to warn about.
    assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
    assert_eq!(rendered.files.len(), 15, "3 files × 5 minors");
    if std::env::var_os("UPDATE_ENVOYFILTERS").is_some() {
        rendered.write_to(&shipped_dir()).unwrap();
        return;
    }
    let drift = rendered.diff_against(&shipped_dir());
    assert!(
        drift.is_empty(),
        "envoyfilters/ drifted from the renderer:\n  {}\nRegenerate with: UPDATE_ENVOYFILTERS=1 cargo test -p envoyfilter-model --test shipped",
        drift.join("\n  ")
    );
}

#[test]
fn every_shipped_file_parses_without_warnings() {
    for minor in 13..=17 {
        let dir = shipped_dir().join(format!("1.{minor}"));
        let set = load_paths(&[&dir], LoadOptions::default())
            .unwrap_or_else(|e| panic!("1.{minor}: {e}"));
        assert_eq!(set.filters.len(), 3, "1.{minor}");
        assert!(set.warnings.is_empty(), "1.{minor}: {:?}", set.warnings);
        for f in &set.filters {
            assert_eq!(f.namespace, "istio-system");
            assert!(
                !f.labels.contains_key("istio.io/rev"),
                "no revision label: every istiod applies it"
            );
            for p in &f.patches {
                // The exact string pilot turns into a prefix test.
                assert_eq!(p.proxy_version, format!(r"^1\.{minor}.*"));
                assert!(p.version_matcher.is_fast_path());
            }
        }
        let stats: Vec<_> = set
            .filters
            .iter()
            .filter(|f| f.name.contains("stats"))
            .collect();
        assert!(stats.iter().all(|f| f.priority == -1));
        let ag = set
            .filters
            .iter()
            .find(|f| f.name.contains("attributegen"))
            .unwrap();
        assert!(
            ag.priority > -1,
            "attributegen must be applied after the stats filters"
        );
    }
}

/// The Wasm fields Envoy needs, per filter, checked on the patched chains.
fn wasm_of(kind: &FilterKind) -> &envoyfilter_model::chain::WasmFilter {
    match kind {
        FilterKind::Wasm(w) => w,
        other => panic!("expected a Wasm filter, got {other:?}"),
    }
}

#[test]
fn patched_chains_place_our_filters_before_router_and_tcp_proxy() {
    for (minor, version) in [
        (13, "1.13.9"),
        (14, "1.14.6"),
        (15, "1.15.7"),
        (16, "1.16.7"),
        (17, "1.17.8"),
    ] {
        let set = load_paths(&[shipped_dir_for(version).unwrap()], LoadOptions::default()).unwrap();
        let patched = build_chains(&set, &Proxy::new(version), &PatchOptions::default()).unwrap();
        assert!(patched.notes.is_empty(), "{version}: {:?}", patched.notes);
        for ctx in [
            Context::SidecarInbound,
            Context::SidecarOutbound,
            Context::Gateway,
        ] {
            let http = &patched.chains.http[&ctx];
            let names: Vec<&str> = http.iter().map(|f| f.name.as_str()).collect();
            let n = names.len();
            // The shipped attributegen rules (the book's operationId) apply to outbound only.
            let tail: &[&str] = if ctx == Context::SidecarOutbound {
                &[
                    "istio.attributegen",
                    "istio.stats",
                    "envoy.filters.http.router",
                ]
            } else {
                &["istio.stats", "envoy.filters.http.router"]
            };
            assert_eq!(
                &names[n - tail.len()..],
                tail,
                "{version} {ctx:?}: {names:?}"
            );
            assert_eq!(
                names.iter().filter(|n| **n == "istio.attributegen").count(),
                usize::from(ctx == Context::SidecarOutbound),
                "{version} {ctx:?}: {names:?}"
            );
            // MX stays first (1.16+ explicitly; 1.13–1.15 because no authn/RBAC filters by default).
            assert_eq!(names[0], "istio.metadata_exchange");
            let stats = wasm_of(&http[n - 2].kind);
            let role = if ctx == Context::SidecarInbound {
                "stats_inbound"
            } else {
                "stats_outbound"
            };
            assert_eq!(stats.root_id, role);
            assert_eq!(stats.vm_id, role);
            assert_eq!(stats.runtime, "envoy.wasm.runtime.v8");
            assert_eq!(
                stats.code,
                WasmCode::LocalFile("/var/local/wasm/stats_plugin.wasm".into())
            );
            let cfg: serde_json::Value = serde_json::from_slice(&stats.configuration).unwrap();
            // Inbound and gateway HTTP keep Istio's disable_host_header_fallback default.
            let dhhf =
                cfg.get("disable_host_header_fallback") == Some(&serde_json::Value::Bool(true));
            assert_eq!(dhhf, ctx != Context::SidecarOutbound, "{version} {ctx:?}");
            // Every context carries the book's get_calls definition (book-examples.md §2).
            assert_eq!(
                cfg["definitions"][0]["name"], "get_calls",
                "{version} {ctx:?}"
            );
            if ctx == Context::SidecarOutbound {
                assert_eq!(
                    cfg["metrics"][0]["dimensions"]["upstream_operation"],
                    "istio_operationId"
                );
                let ag = wasm_of(&http[n - 3].kind);
                assert_eq!(ag.root_id, "");
                assert_eq!(ag.vm_id, "attributegen");
                assert_eq!(
                    ag.code,
                    WasmCode::LocalFile("/var/local/wasm/attributegen_plugin.wasm".into())
                );
                let agcfg: serde_json::Value = serde_json::from_slice(&ag.configuration).unwrap();
                assert_eq!(
                    agcfg["attributes"][0]["output_attribute"],
                    "istio_operationId"
                );
                // getitems, createitem, deleteitem (book-examples.md §3).
                assert_eq!(agcfg["attributes"][0]["match"].as_array().unwrap().len(), 3);
            }
            assert!(http[n - 2]
                .origin
                .starts_with(&format!("istio-system/wasm-stats-filter-1.{minor}#")));

            let tcp = &patched.chains.network[&ctx];
            let tnames: Vec<&str> = tcp.iter().map(|f| f.name.as_str()).collect();
            let expected: &[&str] = if ctx == Context::SidecarInbound {
                &[
                    "istio.metadata_exchange",
                    "istio.stats",
                    "envoy.filters.network.tcp_proxy",
                ]
            } else {
                &["istio.stats", "envoy.filters.network.tcp_proxy"]
            };
            assert_eq!(tnames, expected, "{version} {ctx:?}");
            let t = wasm_of(&tcp[tcp.len() - 2].kind);
            let vm = if ctx == Context::SidecarInbound {
                "tcp_stats_inbound"
            } else {
                "tcp_stats_outbound"
            };
            assert_eq!(t.vm_id, vm);
            assert_eq!(t.root_id, role);
            let tcfg: serde_json::Value = serde_json::from_slice(&t.configuration).unwrap();
            // A configOverride goes unchanged to the HTTP and the TCP filter of its context
            // (envoyfilter-spec §2.1 item 2); TCP ignores the host-header switch anyway.
            assert_eq!(tcfg, cfg, "{version} {ctx:?}");
        }
    }
}

#[test]
fn shipped_set_for_one_minor_does_not_touch_another_minor() {
    // Loading the whole envoyfilters/ tree for a 1.15 proxy applies only the 1.15 files.
    let set = load_paths(
        &[
            shipped_dir().join("1.13"),
            shipped_dir().join("1.14"),
            shipped_dir().join("1.15"),
            shipped_dir().join("1.16"),
            shipped_dir().join("1.17"),
        ],
        LoadOptions::default(),
    )
    .unwrap();
    let patched = build_chains(&set, &Proxy::new("1.15.2"), &PatchOptions::default()).unwrap();
    for ctx in [
        Context::SidecarInbound,
        Context::SidecarOutbound,
        Context::Gateway,
    ] {
        let stats: Vec<_> = patched.chains.http[&ctx]
            .iter()
            .filter(|f| f.name == "istio.stats")
            .collect();
        assert_eq!(stats.len(), 1);
        assert!(stats[0]
            .origin
            .starts_with("istio-system/wasm-stats-filter-1.15#"));
    }
}

#[test]
fn manifests_parse_and_their_envoyfilters_validate() {
    let dir = shipped_dir().join("manifests");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        // The strategic-merge patch is a fragment, not an object.
        if !name.ends_with(".yaml") || name.ends_with("-patch.yaml") {
            continue;
        }
        let set =
            load_paths(&[&p], LoadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
        for w in &set.warnings {
            // Only skipped non-EnvoyFilter kinds are expected.
            assert!(w.message.starts_with("skipped "), "{name}: {w}");
        }
    }
    assert!(seen >= 4, "{seen}");
    // The remote variant decodes to WasmCode::Remote.
    let set = load_paths(
        &[dir.join("remote-code-example.yaml")],
        LoadOptions::default(),
    )
    .unwrap();
    let p = build_chains(&set, &Proxy::new("1.17.1"), &PatchOptions::default()).unwrap();
    let stats = p.chains.http[&Context::SidecarOutbound]
        .iter()
        .find(|f| f.name == "istio.stats")
        .unwrap();
    assert!(
        matches!(&wasm_of(&stats.kind).code, WasmCode::Remote { uri, .. } if uri.ends_with("/stats_plugin.wasm"))
    );
}
