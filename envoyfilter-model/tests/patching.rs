//! istiod's patching semantics, one behaviour per test (pilot/pkg/model/push_context.go ordering,
//! envoyfilter/listener_patch.go operations, envoyfilter.go proxyVersion matching).

use envoyfilter_model::chain::{Context, FilterKind, WasmCode};
use envoyfilter_model::load::{load_str, LoadOptions, LoadedSet};
use envoyfilter_model::patch::{build_chains, PatchOptions, Patched, Proxy};
use envoyfilter_model::shipped_dir_for;

/// An HTTP_FILTER patch inserting a native filter called `name`.
fn http_patch(
    ns: &str,
    name: &str,
    extra_spec: &str,
    op: &str,
    sub: Option<&str>,
    value_name: &str,
    context: &str,
) -> String {
    let sub = sub
        .map(|s| format!("\n            subFilter:\n              name: {s}"))
        .unwrap_or_default();
    format!(
        r#"---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: {name}
  namespace: {ns}
spec:
{extra_spec}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: {context}
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager{sub}
    patch:
      operation: {op}
      value:
        name: {value_name}
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
"#
    )
}

fn load(text: &str) -> LoadedSet {
    load_str(text, "test.yaml", LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn http_names(p: &Patched, ctx: Context) -> Vec<String> {
    p.chains.http[&ctx].iter().map(|f| f.name.clone()).collect()
}

fn chains(text: &str, version: &str, proxy_ns: Option<&str>) -> Patched {
    let mut proxy = Proxy::new(version);
    proxy.namespace = proxy_ns.map(str::to_string);
    build_chains(&load(text), &proxy, &PatchOptions::default()).unwrap()
}

const MX_ALPN_FAULT_CORS_15: [&str; 4] = [
    "istio.metadata_exchange",
    "istio.alpn",
    "envoy.filters.http.fault",
    "envoy.filters.http.cors",
];

#[test]
fn root_namespace_filters_apply_before_workload_namespace_regardless_of_priority() {
    let text = http_patch(
        "istio-system",
        "root",
        "  priority: 10",
        "INSERT_BEFORE",
        Some("envoy.filters.http.router"),
        "a.root",
        "SIDECAR_OUTBOUND",
    ) + &http_patch(
        "shop",
        "local",
        "  priority: -5",
        "INSERT_BEFORE",
        Some("envoy.filters.http.router"),
        "b.local",
        "SIDECAR_OUTBOUND",
    );
    let p = chains(&text, "1.15.0", Some("shop"));
    let names = http_names(&p, Context::SidecarOutbound);
    assert_eq!(
        names[4..],
        ["a.root", "b.local", "envoy.filters.http.router"]
    );
    // Another workload namespace does not get the local filter.
    let p = chains(&text, "1.15.0", Some("other"));
    assert!(!http_names(&p, Context::SidecarOutbound).contains(&"b.local".to_string()));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("shop/local: not in the root namespace")),
        "{:?}",
        p.notes
    );
}

#[test]
fn priority_then_creation_then_name() {
    // Same priority, no timestamps: load (creation) order. `z` loaded first inserts first, so `a`
    // (INSERT_BEFORE router) lands between z and the router.
    let text = http_patch(
        "istio-system",
        "z",
        "",
        "INSERT_BEFORE",
        Some("envoy.filters.http.router"),
        "z",
        "ANY",
    ) + &http_patch(
        "istio-system",
        "a",
        "",
        "INSERT_BEFORE",
        Some("envoy.filters.http.router"),
        "a",
        "ANY",
    );
    let p = chains(&text, "1.14.1", None);
    assert_eq!(
        http_names(&p, Context::SidecarInbound)[3..],
        ["z", "a", "envoy.filters.http.router"]
    );
    // Equal creationTimestamps: `name.namespace` decides (a before z).
    let ts = "  creationTimestamp: \"2023-01-01T00:00:00Z\"\n";
    let text = text.replace(
        "  namespace: istio-system\n",
        &format!("  namespace: istio-system\n{ts}"),
    );
    let p = chains(&text, "1.14.1", None);
    assert_eq!(
        http_names(&p, Context::SidecarInbound)[3..],
        ["a", "z", "envoy.filters.http.router"]
    );
    // Lower priority first, whatever the creation order.
    let text = http_patch(
        "istio-system",
        "z",
        "  priority: 5",
        "INSERT_BEFORE",
        Some("envoy.filters.http.router"),
        "z",
        "ANY",
    ) + &http_patch(
        "istio-system",
        "a",
        "  priority: 7",
        "INSERT_BEFORE",
        Some("envoy.filters.http.router"),
        "a",
        "ANY",
    );
    let p = chains(&text, "1.14.1", None);
    assert_eq!(
        http_names(&p, Context::SidecarInbound)[3..],
        ["z", "a", "envoy.filters.http.router"]
    );
}

/// istio/istio#30962: a user filter relative to istio.stats created before the (re-created) 1.13
/// stats filter, which had no priority, is silently skipped; `priority: -1` on the stats filter
/// (Istio 1.14+, and our 1.13 file) fixes it.
#[test]
fn the_1_13_upgrade_trap_and_its_priority_fix() {
    let shipped =
        std::fs::read_to_string(shipped_dir_for("1.13.9").unwrap().join("stats-filter.yaml"))
            .unwrap();
    let user = http_patch(
        "istio-system",
        "attributegen-user",
        "",
        "INSERT_BEFORE",
        Some("istio.stats"),
        "istio.attributegen-user",
        "SIDECAR_INBOUND",
    )
    .replace(
        "  namespace: istio-system\n",
        "  namespace: istio-system\n  creationTimestamp: \"2021-01-01T00:00:00Z\"\n",
    );
    let stats_no_priority = shipped.replace("  priority: -1\n", "").replace(
        "  namespace: istio-system\n",
        "  namespace: istio-system\n  creationTimestamp: \"2022-06-01T00:00:00Z\"\n",
    );
    let p = chains(&format!("{user}---\n{stats_no_priority}"), "1.13.9", None);
    let names = http_names(&p, Context::SidecarInbound);
    assert!(
        !names.contains(&"istio.attributegen-user".to_string()),
        "{names:?}"
    );
    assert!(
        p.notes.iter().any(
            |n| n.contains("istio-system/attributegen-user configPatches[0]")
                && n.contains("not applied")
                && n.contains("no filter named \"istio.stats\"")
        ),
        "{:?}",
        p.notes
    );
    // With the shipped priority -1 the stats filter applies first and the user filter lands.
    let with_priority = shipped.replace(
        "  namespace: istio-system\n",
        "  namespace: istio-system\n  creationTimestamp: \"2022-06-01T00:00:00Z\"\n",
    );
    let p = chains(&format!("{user}---\n{with_priority}"), "1.13.9", None);
    let names = http_names(&p, Context::SidecarInbound);
    assert_eq!(
        names[names.len() - 3..],
        [
            "istio.attributegen-user",
            "istio.stats",
            "envoy.filters.http.router"
        ]
    );
}

#[test]
fn operations_follow_listener_patch_go() {
    let r = Some("envoy.filters.http.router");
    let text = [
        http_patch(
            "istio-system",
            "f1",
            "  priority: 1",
            "INSERT_FIRST",
            None,
            "first",
            "SIDECAR_INBOUND",
        ),
        http_patch(
            "istio-system",
            "f2",
            "  priority: 2",
            "ADD",
            None,
            "added",
            "SIDECAR_INBOUND",
        ),
        http_patch(
            "istio-system",
            "f3",
            "  priority: 3",
            "INSERT_AFTER",
            Some("envoy.filters.http.fault"),
            "after-fault",
            "SIDECAR_INBOUND",
        ),
        // INSERT_BEFORE without a subFilter inserts at the very beginning.
        http_patch(
            "istio-system",
            "f4",
            "  priority: 4",
            "INSERT_BEFORE",
            None,
            "very-first",
            "SIDECAR_INBOUND",
        ),
        http_patch(
            "istio-system",
            "f5",
            "  priority: 5",
            "REPLACE",
            Some("envoy.filters.http.cors"),
            "cors-replacement",
            "SIDECAR_INBOUND",
        ),
        // REPLACE without subFilter does nothing.
        http_patch(
            "istio-system",
            "f6",
            "  priority: 6",
            "REPLACE",
            None,
            "never",
            "SIDECAR_INBOUND",
        ),
        http_patch(
            "istio-system",
            "f7",
            "  priority: 7",
            "INSERT_BEFORE",
            r,
            "before-router",
            "SIDECAR_INBOUND",
        ),
    ]
    .concat();
    let p = chains(&text, "1.16.0", None);
    assert_eq!(
        http_names(&p, Context::SidecarInbound),
        [
            "very-first",
            "first",
            "istio.metadata_exchange",
            "envoy.filters.http.fault",
            "after-fault",
            "cors-replacement",
            "before-router",
            "envoy.filters.http.router",
            "added"
        ]
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("f6") && n.contains("REPLACE without")),
        "{:?}",
        p.notes
    );
    // Other contexts untouched.
    assert_eq!(http_names(&p, Context::Gateway)[..4], MX_ALPN_FAULT_CORS_15);
}

#[test]
fn remove_and_deprecated_names() {
    let text = http_patch(
        "istio-system",
        "rm",
        "  priority: 1",
        "REMOVE",
        Some("envoy.cors"),
        "ignored",
        "ANY",
    )
    .replace(
        "envoy.filters.network.http_connection_manager",
        "envoy.http_connection_manager",
    ) + &http_patch(
        "istio-system",
        "ins",
        "  priority: 2",
        "INSERT_BEFORE",
        Some("envoy.router"),
        "x",
        "ANY",
    );
    let set = load(&text);
    assert!(set
        .warnings
        .iter()
        .any(|w| w.message.contains("deprecated filter name \"envoy.cors\"")));
    let p = build_chains(&set, &Proxy::new("1.15.3"), &PatchOptions::default()).unwrap();
    for ctx in [
        Context::SidecarInbound,
        Context::SidecarOutbound,
        Context::Gateway,
    ] {
        let names = http_names(&p, ctx);
        assert!(
            !names.contains(&"envoy.filters.http.cors".to_string()),
            "{names:?}"
        );
        assert_eq!(names[names.len() - 2..], ["x", "envoy.filters.http.router"]);
    }
}

#[test]
fn proxy_version_workload_selector_and_empty_version() {
    let text = http_patch(
        "istio-system",
        "v",
        "  workloadSelector:\n    labels:\n      app: webapp",
        "INSERT_BEFORE",
        Some("envoy.filters.http.router"),
        "sel",
        "ANY",
    )
    .replace(
        "    match:\n",
        "    match:\n      proxy:\n        proxyVersion: ^1\\.16.*\n",
    );
    let mut proxy = Proxy::new("1.16.4");
    proxy.labels.insert("app".into(), "webapp".into());
    let set = load(&text);
    let p = build_chains(&set, &proxy, &PatchOptions::default()).unwrap();
    assert!(http_names(&p, Context::SidecarInbound).contains(&"sel".to_string()));
    proxy.labels.insert("app".into(), "catalog".into());
    let p = build_chains(&set, &proxy, &PatchOptions::default()).unwrap();
    assert!(!http_names(&p, Context::SidecarInbound).contains(&"sel".to_string()));
    // No ISTIO_VERSION: the fast-path prefix test fails, and so would any regex.
    let mut proxy = Proxy::new("");
    proxy.labels.insert("app".into(), "webapp".into());
    let p = build_chains(&set, &proxy, &PatchOptions::default()).unwrap();
    assert!(!http_names(&p, Context::SidecarInbound).contains(&"sel".to_string()));
}

#[test]
fn over_wide_proxy_version_is_warned() {
    let text = http_patch(
        "istio-system",
        "wide",
        "  priority: 1",
        "INSERT_BEFORE",
        Some("envoy.filters.http.router"),
        "w",
        "ANY",
    )
    .replace(
        "    match:\n",
        "    match:\n      proxy:\n        proxyVersion: ^1\\.1.*\n",
    );
    let set = load(&text);
    assert!(
        set.warnings
            .iter()
            .any(|w| w.message.contains("matches several minors")),
        "{:?}",
        set.warnings
    );
    for v in ["1.13.0", "1.17.8"] {
        let p = build_chains(&set, &Proxy::new(v), &PatchOptions::default()).unwrap();
        assert!(
            http_names(&p, Context::Gateway).contains(&"w".to_string()),
            "{v}"
        );
    }
}

#[test]
fn keeping_istios_own_stats_shows_two_istio_stats_filters() {
    for (version, istio_kind) in [("1.15.7", "null"), ("1.17.8", "native")] {
        let dir = shipped_dir_for(version).unwrap();
        let set = envoyfilter_model::load::load_paths(&[dir], LoadOptions::default()).unwrap();
        let opts = PatchOptions {
            with_istio_stats: true,
            ..Default::default()
        };
        let p = build_chains(&set, &Proxy::new(version), &opts).unwrap();
        let http = &p.chains.http[&Context::SidecarOutbound];
        let stats: Vec<_> = http.iter().filter(|f| f.name == "istio.stats").collect();
        assert_eq!(stats.len(), 2, "{version}: every request counted twice");
        // Istio's (created at install) is applied first, ours inserts after it, before the router.
        assert!(
            stats[0].origin.contains("/stats-filter-1."),
            "{}",
            stats[0].origin
        );
        assert!(
            stats[1].origin.contains("/wasm-stats-filter-1."),
            "{}",
            stats[1].origin
        );
        match (&stats[0].kind, istio_kind) {
            (FilterKind::Wasm(w), "null") => {
                assert_eq!(w.code, WasmCode::InlineString("envoy.wasm.stats".into()));
                assert_eq!(w.runtime, "envoy.wasm.runtime.null");
            }
            (FilterKind::Native { type_url, .. }, "native") => {
                assert_eq!(type_url, "type.googleapis.com/stats.PluginConfig")
            }
            (k, _) => panic!("{version}: {k:?}"),
        }
        // attributegen lands before the first istio.stats it finds: Istio's.
        let names: Vec<&str> = http.iter().map(|f| f.name.as_str()).collect();
        let n = names.len();
        assert_eq!(
            names[n - 4..],
            [
                "istio.attributegen",
                "istio.stats",
                "istio.stats",
                "envoy.filters.http.router"
            ]
        );
    }
}

#[test]
fn book_attributegen_in_its_namespace_runs_after_ours_and_before_stats() {
    let book = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/attributegen/book-attribute-gen-example.yaml"),
    )
    .unwrap();
    let mut loader = envoyfilter_model::load::Loader::new(LoadOptions::default());
    loader.add_path(&shipped_dir_for("1.17.8").unwrap());
    loader.add_str(&book, "book");
    let set = loader.finish().unwrap();
    assert!(set
        .warnings
        .iter()
        .any(|w| w.resource == "istioinaction/attribute-gen-example"
            && w.message.starts_with("IST0151")));
    let mut proxy = Proxy::new("1.17.8");
    proxy.namespace = Some("istioinaction".into());
    let p = build_chains(&set, &proxy, &PatchOptions::default()).unwrap();
    let http = &p.chains.http[&Context::SidecarOutbound];
    let n = http.len();
    let names: Vec<&str> = http.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names[n - 4..],
        [
            "istio.attributegen",
            "istio.attributegen",
            "istio.stats",
            "envoy.filters.http.router"
        ]
    );
    assert!(http[n - 4]
        .origin
        .starts_with("istio-system/wasm-attributegen-1.17"));
    assert_eq!(http[n - 3].origin, "istioinaction/attribute-gen-example#0");
    let FilterKind::Wasm(w) = &http[n - 3].kind else {
        panic!()
    };
    assert_eq!(
        w.code,
        WasmCode::InlineString("envoy.wasm.attributegen".into())
    );
    assert!(String::from_utf8_lossy(&w.configuration).contains("\"getitems\""));
}

#[test]
fn ecds_config_discovery_resolves_extension_config() {
    let text = r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ecds, namespace: istio-system}
spec:
  priority: 1
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: istio.attributegen
        config_discovery:
          config_source: {ads: {}, initial_fetch_timeout: 0s}
          type_urls: ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]
  - applyTo: EXTENSION_CONFIG
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: ADD
      value:
        name: istio.attributegen
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
          value:
            config:
              configuration:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{"attributes":[]}'
              vm_config:
                runtime: envoy.wasm.runtime.null
                code: {local: {inline_string: envoy.wasm.attributegen}}
"#;
    let p = chains(text, "1.13.2", None);
    let http = &p.chains.http[&Context::SidecarInbound];
    let ag = http
        .iter()
        .find(|f| f.name == "istio.attributegen")
        .unwrap();
    let FilterKind::Wasm(w) = &ag.kind else {
        panic!()
    };
    assert_eq!(w.configuration, br#"{"attributes":[]}"#);
}

#[test]
fn merge_of_typed_structs_replaces_top_level_value_keys() {
    let shipped =
        std::fs::read_to_string(shipped_dir_for("1.16.0").unwrap().join("stats-filter.yaml"))
            .unwrap();
    let merge = r#"---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: merge-stats, namespace: istio-system}
spec:
  priority: 5
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: istio.stats}
    patch:
      operation: MERGE
      value:
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
          value:
            config:
              root_id: stats_outbound
              configuration:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: '{"metrics":[{"name":"requests_total","drop":true}]}'
              vm_config:
                runtime: envoy.wasm.runtime.v8
                code: {local: {filename: /var/local/wasm/stats_plugin.wasm}}
"#;
    let p = chains(&format!("{shipped}{merge}"), "1.16.0", None);
    let stats = p.chains.http[&Context::SidecarOutbound]
        .iter()
        .find(|f| f.name == "istio.stats")
        .unwrap();
    let FilterKind::Wasm(w) = &stats.kind else {
        panic!()
    };
    assert_eq!(
        w.configuration,
        br#"{"metrics":[{"name":"requests_total","drop":true}]}"#
    );
    // `value.config` was replaced as a whole (Struct map-entry merge), so vm_id is gone.
    assert_eq!(w.vm_id, "");
    assert_eq!(stats.origin, "istio-system/merge-stats#0");
}

#[test]
fn tcp_patches_and_remove_of_network_filters() {
    let shipped = std::fs::read_to_string(
        shipped_dir_for("1.14.0")
            .unwrap()
            .join("tcp-stats-filter.yaml"),
    )
    .unwrap();
    let rm = r#"---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: rm-mx, namespace: istio-system}
spec:
  priority: 3
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      context: SIDECAR_INBOUND
      listener: {filterChain: {filter: {name: istio.metadata_exchange}}}
    patch: {operation: REMOVE}
"#;
    let p = chains(&format!("{shipped}{rm}"), "1.14.0", None);
    let names: Vec<&str> = p.chains.network[&Context::SidecarInbound]
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["istio.stats", "envoy.filters.network.tcp_proxy"]);
}

#[test]
fn proxy_from_node_metadata_and_summary() {
    let md = serde_json::json!({"NAMESPACE": "istioinaction", "LABELS": {"app": "webapp"}, "ISTIO_VERSION": "1.17.8", "MESH_ID": "m1"});
    let proxy = Proxy::from_node_metadata("1.17.8", &md);
    assert_eq!(proxy.namespace.as_deref(), Some("istioinaction"));
    assert_eq!(proxy.labels.get("app").map(String::as_str), Some("webapp"));
    assert_eq!(
        proxy.metadata.get("MESH_ID").map(String::as_str),
        Some("m1")
    );
    let set = envoyfilter_model::load::load_paths(
        &[shipped_dir_for("1.17.8").unwrap()],
        LoadOptions::default(),
    )
    .unwrap();
    let p = build_chains(&set, &proxy, &PatchOptions::default()).unwrap();
    let s = p.summary();
    assert!(s.contains("SIDECAR_INBOUND tcp: istio.metadata_exchange → istio.stats → envoy.filters.network.tcp_proxy\n"), "{s}");
    assert_eq!(s.lines().count(), 6);
}
