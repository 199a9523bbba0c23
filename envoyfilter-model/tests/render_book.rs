//! The renderer on the book's three IstioOperator inputs (book-examples.md §1–3), with
//! expectations derived by hand from istioctl's behaviour: `toJson` of the override (Go
//! `encoding/json`: compact, keys sorted) replaces the default JSON of that context, for the
//! HTTP and the TCP filter alike.

use envoyfilter_model::chain::{Context, FilterKind};
use envoyfilter_model::load::{load_str, LoadOptions};
use envoyfilter_model::patch::{build_chains, PatchOptions, Proxy};
use envoyfilter_model::render::{render, RenderInput, RenderOptions, RenderedSet};
use std::path::PathBuf;

fn testdata(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(p)
}

fn render_book(operator: &str, attributegen: Option<&str>) -> RenderedSet {
    let ag = attributegen.map(testdata);
    let input = RenderInput::from_files(
        Some(&testdata(operator)),
        ag.as_deref(),
        RenderOptions::default(),
    )
    .unwrap();
    render(&input).unwrap()
}

fn file<'a>(set: &'a RenderedSet, path: &str) -> &'a str {
    &set.files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path}"))
        .contents
}

/// Per context, the configuration bytes of the Wasm filters in one rendered file.
fn configs(text: &str) -> Vec<(String, String)> {
    let set = load_str(text, "rendered", LoadOptions::default()).unwrap();
    let mut out = Vec::new();
    for p in &set.filters[0].patches {
        let v = p.value.as_ref().unwrap();
        let d = envoyfilter_model::typed_config::decode(
            &v["typed_config"],
            "t",
            if p.apply_to == envoyfilter_model::resource::ApplyTo::HttpFilter {
                envoyfilter_model::typed_config::ChainKind::Http
            } else {
                envoyfilter_model::typed_config::ChainKind::Network
            },
        )
        .unwrap();
        let FilterKind::Wasm(w) = d.kind else {
            panic!("not wasm")
        };
        out.push((
            p.context.as_str().to_string(),
            String::from_utf8(w.configuration).unwrap(),
        ));
    }
    out
}

#[test]
fn book_1_dimensions_and_tags_to_remove() {
    let set = render_book("istio-operator/book-1-dimensions.yaml", None);
    // book-examples.md §1 quotes the 1.13 plugin configuration istioctl writes. The `value: |`
    // block keeps one trailing newline, exactly as in istioctl's own output.
    let expected = "{\"metrics\":[{\"dimensions\":{\"source_mesh_id\":\"node.metadata['MESH_ID']\",\"upstream_proxy_version\":\"upstream_peer.istio_version\"},\"name\":\"requests_total\",\"tags_to_remove\":[\"request_protocol\"]}]}\n";
    for minor in 13..=17 {
        for name in ["stats-filter", "tcp-stats-filter"] {
            let c = configs(file(&set, &format!("1.{minor}/{name}.yaml")));
            assert_eq!(c.len(), 3);
            for (ctx, cfg) in c {
                assert_eq!(cfg, expected, "1.{minor} {name} {ctx}");
            }
        }
    }
    let w = set.warnings.join("\n");
    // The override replaces the inbound and gateway defaults and drops disable_host_header_fallback.
    assert!(
        w.contains("configOverride.inboundSidecar: replaces Istio's default wholesale"),
        "{w}"
    );
    assert!(
        w.contains("configOverride.gateway: replaces Istio's default wholesale"),
        "{w}"
    );
    assert!(
        !w.contains("configOverride.outboundSidecar: replaces"),
        "{w}"
    );
    // Both new dimensions need extraStatTags, in all three contexts.
    for d in ["upstream_proxy_version", "source_mesh_id"] {
        assert_eq!(
            w.matches(&format!("dimensions.{d}: a new dimension"))
                .count(),
            3,
            "{d}: {w}"
        );
    }
    // The book's install keeps Istio's own stats on: counted twice next to ours.
    assert!(w.contains("prometheus.enabled is not false"), "{w}");
}

#[test]
fn book_2_new_metric_goes_to_every_context_and_protocol() {
    let set = render_book("istio-operator/book-2-get-calls.yaml", None);
    let expected = "{\"definitions\":[{\"name\":\"get_calls\",\"type\":\"COUNTER\",\"value\":\"(request.method.startsWith('GET') ? 1 : 0)\"}]}\n";
    for minor in 13..=17 {
        for name in ["stats-filter", "tcp-stats-filter"] {
            for (ctx, cfg) in configs(file(&set, &format!("1.{minor}/{name}.yaml"))) {
                assert_eq!(cfg, expected, "1.{minor} {name} {ctx}");
            }
        }
    }
    // No custom dimension: no extraStatTags warning.
    assert!(
        !set.warnings.iter().any(|w| w.contains("extraStatTags")),
        "{:?}",
        set.warnings
    );
}

#[test]
fn book_3_operation_id_outbound_only() {
    let set = render_book(
        "istio-operator/book-3-operation.yaml",
        Some("attributegen/book-operation-id.yaml"),
    );
    // Only outboundSidecar is overridden; the other contexts keep the version's default text.
    let http13 = configs(file(&set, "1.13/stats-filter.yaml"));
    assert_eq!(
        http13[0],
        (
            "SIDECAR_OUTBOUND".to_string(),
            "{\"metrics\":[{\"dimensions\":{\"upstream_operation\":\"istio_operationId\"},\"name\":\"requests_total\"}]}\n"
                .to_string()
        )
    );
    assert!(
        http13[1]
            .1
            .contains("\"source_cluster\": \"downstream_peer.cluster_id\""),
        "1.13 inbound default"
    );
    let http15 = configs(file(&set, "1.15/stats-filter.yaml"));
    assert_eq!(
        http15[1].1,
        "{\n  \"debug\": \"false\",\n  \"stat_prefix\": \"istio\",\n  \"disable_host_header_fallback\": true\n}\n"
    );
    let http17 = configs(file(&set, "1.17/stats-filter.yaml"));
    assert_eq!(
        http17[2].1, "{\n  \"disable_host_header_fallback\": true\n}\n",
        "1.17 gateway default"
    );

    // attributegen: one patch, SIDECAR_OUTBOUND, relative to istio.stats.
    let ag = load_str(
        file(&set, "1.17/attributegen-filter.yaml"),
        "ag",
        LoadOptions::default(),
    )
    .unwrap();
    assert!(ag.warnings.is_empty(), "{:?}", ag.warnings);
    let p = &ag.filters[0].patches;
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].context.as_str(), "SIDECAR_OUTBOUND");
    assert_eq!(p[0].sub_filter(), Some("istio.stats"));

    // Patched for a 1.17.8 proxy: attributegen right before stats, outbound only.
    let mut text = String::new();
    for f in [
        "1.17/stats-filter.yaml",
        "1.17/tcp-stats-filter.yaml",
        "1.17/attributegen-filter.yaml",
    ] {
        text.push_str("---\n");
        text.push_str(file(&set, f));
    }
    let loaded = load_str(&text, "book3", LoadOptions::default()).unwrap();
    let patched = build_chains(&loaded, &Proxy::new("1.17.8"), &PatchOptions::default()).unwrap();
    let out: Vec<&str> = patched.chains.http[&Context::SidecarOutbound]
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        out,
        [
            "istio.metadata_exchange",
            "envoy.filters.http.grpc_stats",
            "istio.alpn",
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "istio.attributegen",
            "istio.stats",
            "envoy.filters.http.router"
        ]
    );
    assert!(!patched.chains.http[&Context::SidecarInbound]
        .iter()
        .any(|f| f.name == "istio.attributegen"));
    let FilterKind::Wasm(w) = &patched.chains.http[&Context::SidecarOutbound][5].kind else {
        panic!()
    };
    let cfg: serde_json::Value = serde_json::from_slice(&w.configuration).unwrap();
    assert_eq!(
        cfg["attributes"][0]["output_attribute"],
        "istio_operationId"
    );
    assert_eq!(cfg["attributes"][0]["match"][2]["value"], "deleteitem");

    let w = set.warnings.join("\n");
    assert!(
        w.contains("dimensions.upstream_operation: a new dimension"),
        "{w}"
    );
    // Outbound overrides do not touch the host-header default.
    assert!(!w.contains("replaces Istio's default wholesale"), "{w}");
}

#[test]
fn camel_case_and_reserved_keys_are_called_out() {
    let op = r#"
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  meshConfig:
    defaultConfig:
      extraStatTags: [request_kind]
  values:
    telemetry:
      v2:
        prometheus:
          enabled: false
          configOverride:
            inboundSidecar:
              debug: "false"
              stat_prefix: istio
              disable_host_header_fallback: true
              metrics:
              - name: requests_total
                dimensions:
                  request_kind: "request.method + ' & more'"
                tagsToRemove: [request_protocol]
"#;
    let input = RenderInput {
        operator: envoyfilter_model::render::parse_operator(op, "op.yaml").unwrap(),
        attributegen: None,
        options: RenderOptions::default(),
    };
    let set = render(&input).unwrap();
    let w = set.warnings.join("\n");
    assert!(
        w.contains("metrics[0].tagsToRemove: camelCase is ignored by Istio 1.13–1.16"),
        "{w}"
    );
    assert!(
        w.contains("inboundSidecar.debug: reserved in Istio 1.17"),
        "{w}"
    );
    assert!(
        w.contains("inboundSidecar.stat_prefix: reserved in Istio 1.17"),
        "{w}"
    );
    // Declared in extraStatTags: no label warning; disable_host_header_fallback kept: no warning.
    assert!(!w.contains("extraStatTags"), "{w}");
    assert!(!w.contains("wholesale"), "{w}");
    // Go's encoding/json escapes '&' as \u0026 (Helm toJson), and the plugin reads it back as '&'.
    let c = configs(file(&set, "1.14/stats-filter.yaml"));
    assert!(c[1].1.contains(r"' \u0026 more'"), "{}", c[1].1);
}

#[test]
fn revision_and_namespace_options() {
    let input = RenderInput {
        options: RenderOptions {
            revision: Some("canary".into()),
            namespace: Some("mesh-root".into()),
            wasm_dir: "/etc/wasm/".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let set = render(&input).unwrap();
    let loaded = load_str(
        file(&set, "1.16/stats-filter.yaml"),
        "r",
        LoadOptions::default(),
    )
    .unwrap();
    let f = &loaded.filters[0];
    assert_eq!(f.key(), "mesh-root/wasm-stats-filter-1.16-canary");
    assert_eq!(
        f.labels.get("istio.io/rev").map(String::as_str),
        Some("canary")
    );
    assert!(file(&set, "1.16/stats-filter.yaml").contains("filename: /etc/wasm/stats_plugin.wasm"));
    // No attributegen input, no attributegen file.
    assert_eq!(set.files.len(), 10);
    // A canary-labelled filter is ignored by the default istiod revision.
    let p = build_chains(
        &loaded,
        &Proxy::new("1.16.1"),
        &PatchOptions {
            root_namespace: "mesh-root".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!p.chains.http[&Context::SidecarInbound]
        .iter()
        .any(|f| f.name == "istio.stats"));
    assert!(
        p.notes.iter().any(|n| n.contains("istio.io/rev=canary")),
        "{:?}",
        p.notes
    );
}

#[test]
fn attributegen_rules_can_come_from_the_books_envoy_filter() {
    let a = envoyfilter_model::render::parse_attributegen(
        &std::fs::read_to_string(testdata("attributegen/book-attribute-gen-example.yaml")).unwrap(),
        "book",
    )
    .unwrap();
    let b = envoyfilter_model::render::parse_attributegen(
        &std::fs::read_to_string(testdata("attributegen/book-operation-id.yaml")).unwrap(),
        "rules",
    )
    .unwrap();
    assert_eq!(a.contexts, [Context::SidecarOutbound]);
    // The same three rules, whichever form they were written in.
    assert_eq!(a.config, b.config);
}
