//! Parse + validate: every problem names `namespace/name`, the patch index and the field path;
//! nothing unsupported passes silently.

use envoyfilter_model::load::{load_str, LoadOptions};

fn errors(text: &str) -> Vec<String> {
    match load_str(text, "in.yaml", LoadOptions::default()) {
        Ok(set) => panic!("expected errors, got {} filters", set.filters.len()),
        Err(e) => e.errors.iter().map(|d| d.to_string()).collect(),
    }
}

const HEAD: &str = "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: stats-filter-1.17, namespace: istio-system}\nspec:\n  priority: -1\n  configPatches:\n";

fn wasm_patch(vm_config: &str, configuration: &str) -> String {
    format!(
        r#"  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener: {{filterChain: {{filter: {{name: envoy.filters.network.http_connection_manager, subFilter: {{name: envoy.filters.http.router}}}}}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: istio.stats
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
          value:
            config:
              root_id: stats_outbound
              configuration: {configuration}
              vm_config: {vm_config}
"#
    )
}

const GOOD_VM: &str = "{vm_id: s, runtime: envoy.wasm.runtime.v8, code: {local: {filename: /var/local/wasm/stats_plugin.wasm}}}";
const GOOD_CFG: &str =
    "{\"@type\": type.googleapis.com/google.protobuf.StringValue, value: \"{}\"}";

#[test]
fn errors_name_resource_patch_and_field() {
    let text = format!(
        "{HEAD}{}{}{}",
        wasm_patch(GOOD_VM, GOOD_CFG),
        wasm_patch(
            "{vm_id: s, runtime: envoy.wasm.runtime.v9, code: {local: {filename: /x.wasm}}}",
            GOOD_CFG
        ),
        wasm_patch(
            GOOD_VM,
            "{\"@type\": type.googleapis.com/google.protobuf.Duration, value: 1s}"
        ),
    );
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with("istio-system/stats-filter-1.17 configPatches[1].patch.value.typed_config.value.config.vm_config.runtime: unknown Wasm runtime \"envoy.wasm.runtime.v9\""),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with("istio-system/stats-filter-1.17 configPatches[2].patch.value.typed_config.value.config.configuration.@type: unsupported @type google.protobuf.Duration"),
        "{}",
        e[1]
    );
    assert!(e[1].ends_with("(in.yaml#1)"), "{}", e[1]);
}

#[test]
fn crd_shape_rules() {
    let bad = format!(
        r#"{HEAD}  - applyTo: NETWORK_FILTER
    match:
      context: SIDECAR_SOMEWHERE
      listener: {{filterChain: {{filter: {{name: envoy.filters.network.tcp_proxy, subFilter: {{name: x}}}}}}}}
    patch: {{operation: INSERT_BEFORE, value: {{name: n, typed_config: {{"@type": type.googleapis.com/x.Y}}}}}}
  - applyTo: HTTP_FILTER
    match: {{proxy: {{proxyVersion: "^1\\.(17"}}}}
    patch: {{operation: ADD, value: {{name: n, typed_config: {{"@type": type.googleapis.com/x.Y}}}}}}
  - applyTo: HTTP_FILTER
    patch: {{operation: INSERT_AFTER}}
  - applyTo: HTTP_THING
    patch: {{operation: ADD, value: {{}}}}
  - applyTo: HTTP_FILTER
    patch: {{operation: ADD, value: {{name: v2, typed_config: {{"@type": type.googleapis.com/envoy.config.filter.http.wasm.v2.Wasm}}}}}}
  - applyTo: HTTP_FILTER
    patch: {{operation: ADD, value: {{name: bare}}}}
"#
    );
    let e = errors(&bad).join("\n");
    for needle in [
        "configPatches[0].match.context: unknown context \"SIDECAR_SOMEWHERE\"",
        "configPatches[0].match.listener.filterChain.filter.subFilter: Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
        "configPatches[1].match.proxy.proxyVersion: Envoy filter: invalid regex for proxy version",
        "configPatches[2].patch: Envoy filter: missing patch value for non-remove operation",
        "configPatches[3].applyTo: unknown applyTo \"HTTP_THING\"",
        "configPatches[4].patch.value.typed_config: unsupported @type type.googleapis.com/envoy.config.filter.http.wasm.v2.Wasm",
        "configPatches[5].patch.value: missing typed_config",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
}

#[test]
fn other_kinds_are_skipped_with_a_note_and_lists_expand() {
    let text = format!(
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: attributegen, namespace: istio-system}}\nspec: {{phase: STATS}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: wasm-modules}}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1alpha3\n  kind: EnvoyFilter\n  metadata: {{name: listed, namespace: istio-system}}\n  spec:\n    priority: -1\n    configPatches:\n{}",
        wasm_patch(GOOD_VM, GOOD_CFG).lines().map(|l| format!("  {l}\n")).collect::<String>()
    );
    let set = load_str(&text, "mixed.yaml", LoadOptions::default()).unwrap();
    assert_eq!(set.filters.len(), 1);
    assert_eq!(set.filters[0].key(), "istio-system/listed");
    let w: Vec<String> = set.warnings.iter().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|m| m.contains("skipped WasmPlugin \"attributegen\"")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("skipped ConfigMap \"wasm-modules\"")),
        "{w:?}"
    );
}

#[test]
fn struct_configuration_is_a_warning_not_an_error() {
    let text = format!(
        "{HEAD}{}",
        wasm_patch(
            GOOD_VM,
            "{\"@type\": type.googleapis.com/google.protobuf.Struct, value: {debug: \"false\"}}"
        )
    );
    let set = load_str(&text, "s.yaml", LoadOptions::default()).unwrap();
    assert!(
        set.warnings
            .iter()
            .any(|w| w.message.contains("reaches the plugin as protobuf bytes")),
        "{:?}",
        set.warnings
    );
}

#[test]
fn camel_case_crd_fields_and_remote_code() {
    // Proto-JSON accepts lowerCamel everywhere (rootId, vmConfig, typedConfig, httpUri …).
    let text = r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: remote, namespace: istio-system}
spec:
  priority: 1
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: GATEWAY, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: istio.stats
        typedConfig:
          "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
          config:
            rootId: stats_outbound
            vmConfig:
              vmId: stats_outbound
              runtime: envoy.wasm.runtime.v8
              code:
                remote:
                  httpUri: {uri: "https://example.com/stats_plugin.wasm", cluster: wasm_origin, timeout: 10s}
                  sha256: 0000000000000000000000000000000000000000000000000000000000000000
"#;
    let set = load_str(text, "r.yaml", LoadOptions::default()).unwrap();
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    let p = envoyfilter_model::patch::build_chains(
        &set,
        &envoyfilter_model::patch::Proxy::new("1.16.0"),
        &Default::default(),
    )
    .unwrap();
    let f = p.chains.http[&envoyfilter_model::chain::Context::Gateway]
        .iter()
        .find(|f| f.name == "istio.stats")
        .unwrap();
    let envoyfilter_model::chain::FilterKind::Wasm(w) = &f.kind else {
        panic!()
    };
    assert_eq!(w.root_id, "stats_outbound");
    assert_eq!(
        w.code,
        envoyfilter_model::chain::WasmCode::Remote {
            uri: "https://example.com/stats_plugin.wasm".into(),
            sha256: "0".repeat(64)
        }
    );
}
