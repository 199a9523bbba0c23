//! The built-in Istio rule tables against `testdata/bootstrap/*.stats_config.json`, which were
//! rendered mechanically from upstream: istio/istio `tools/packaging/common/envoy_bootstrap.json`
//! (release-1.16 and release-1.17) with the `extraStatTags` range expanded over `DefaultStatTags`
//! of `pkg/bootstrap/config.go`, and istio/proxy `testdata/bootstrap/stats.yaml.tmpl`
//! (release-1.17, identical on 1.13–1.16) converted to JSON.

use stats_sink::istio_tags::{
    envoy_default_rules, istio_bootstrap_rules, istio_proxy_test_rules,
    rules_from_stats_config_json,
};
use stats_sink::TagExtractor;

fn data(name: &str) -> String {
    let path = format!(
        "{}/../testdata/bootstrap/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn real_bootstrap_tables_match_upstream() {
    let r17 = rules_from_stats_config_json(&data("istio-1.17.stats_config.json")).unwrap();
    assert_eq!(r17, istio_bootstrap_rules(17, &[]));
    let r16 = rules_from_stats_config_json(&data("istio-1.13-1.16.stats_config.json")).unwrap();
    for minor in 13..=16 {
        assert_eq!(r16, istio_bootstrap_rules(minor, &[]));
    }
}

#[test]
fn proxy_test_table_matches_upstream() {
    let rules = rules_from_stats_config_json(&data("istio-proxy-tests.stats_config.json")).unwrap();
    // use_all_default_tags: true puts Envoy's descriptors first.
    assert_eq!(
        rules[..envoy_default_rules().len()],
        envoy_default_rules()[..]
    );
    assert_eq!(rules, istio_proxy_test_rules());
}

#[test]
fn stats_config_errors_name_the_field() {
    let err =
        TagExtractor::from_stats_config_json(r#"{"stats_tags":[{"regex":"(a)"}]}"#).unwrap_err();
    assert!(err.contains("stats_tags[0].tag_name"), "{err}");
    let err = TagExtractor::from_stats_config_json(r#"{"stats_tags":[{"tag_name":"nope"}]}"#)
        .unwrap_err();
    assert!(err.contains("stats_tags[0].regex"), "{err}");
    let err =
        TagExtractor::from_stats_config_json(r#"{"use_all_default_tags":"yes"}"#).unwrap_err();
    assert!(err.contains("use_all_default_tags"), "{err}");
    // An empty regex picks Envoy's built-in descriptor of that name.
    let t = TagExtractor::from_stats_config_json(
        r#"{"useAllDefaultTags":false,"statsTags":[{"tagName":"envoy.response_code"}]}"#,
    )
    .unwrap();
    let (name, tags) = t.extract("cluster.c.upstream_rq_503");
    assert_eq!(name, "cluster.c.upstream_rq");
    assert_eq!(
        tags,
        vec![("envoy.response_code".to_string(), "503".to_string())]
    );
}
