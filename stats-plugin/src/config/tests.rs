use super::*;

#[test]
fn defaults_and_istio_default_configs() {
    // §1.5: the configs Istio shipped.
    let p = parse(br#"{"debug":"false","stat_prefix":"istio"}"#).unwrap();
    assert_eq!(p.config, PluginConfig::default());
    assert!(p.warnings.is_empty());
    assert_eq!(p.config.field_separator, ";.;");
    assert_eq!(p.config.value_separator, "=.=");
    assert_eq!(p.config.tcp_reporting_duration_ms, 15_000);
    let p =
        parse(br#"{"debug":"false","stat_prefix":"istio","disable_host_header_fallback":true}"#)
            .unwrap();
    assert!(p.config.disable_host_header_fallback);
}

#[test]
fn refuses_non_objects() {
    assert!(matches!(parse(b""), Err(ConfigError::NotJson(_))));
    assert!(matches!(parse(b"{"), Err(ConfigError::NotJson(_))));
    assert_eq!(parse(b"[]").unwrap_err(), ConfigError::NotAnObject);
    assert_eq!(parse(b"\"x\"").unwrap_err(), ConfigError::NotAnObject);
}

#[test]
fn lower_camel_1_17_names() {
    let p = parse(
        br#"{"disableHostHeaderFallback":"true","tcpReportingDuration":"500ms","reporter":"SERVER_GATEWAY",
            "metrics":[{"name":"requests_total","tagsToRemove":["a"]}]}"#,
    )
    .unwrap();
    assert!(p.config.disable_host_header_fallback);
    assert_eq!(p.config.tcp_reporting_duration_ms, 500);
    assert_eq!(p.config.metrics[0].tags_to_remove, vec!["a".to_string()]);
}

#[test]
fn wrong_types_take_defaults_with_a_path() {
    let p = parse(br#"{"tcp_reporting_duration":15,"disable_host_header_fallback":"yes","field_separator":1}"#)
        .unwrap();
    assert_eq!(p.config, PluginConfig::default());
    assert_eq!(p.warnings.len(), 3);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.starts_with("tcp_reporting_duration:")));
    let p = parse(br#"{"tcp_reporting_duration":"fast"}"#).unwrap();
    assert_eq!(p.config.tcp_reporting_duration_ms, 15_000);
}

#[test]
fn metrics_elements_record_their_failure_points() {
    let p = parse(
        br#"{"metrics":[
          {"name":"requests_total","dimensions":{"c":"'c'","a":"'a'","b":2,"d":"'d'"}},
          {"tags_to_remove":["x",1,"y"]},
          {"dimensions":"nope"}]}"#,
    )
    .unwrap();
    let m = &p.config.metrics;
    assert_eq!(m.len(), 3);
    // Sorted keys, up to the first non-string value.
    assert_eq!(m[0].dimensions, vec![("a".to_string(), "'a'".to_string())]);
    assert!(m[0].dimensions_error);
    assert_eq!(m[1].tags_to_remove, vec!["x".to_string()]);
    assert!(m[1].tags_to_remove_error);
    assert!(m[2].dimensions_not_object);
    assert!(p
        .warnings
        .iter()
        .any(|w| w == "metrics[0].dimensions.b: expected a string, got a number"));
    assert!(p
        .warnings
        .iter()
        .any(|w| w == "metrics[1].tags_to_remove[1]: expected a string, got a number"));
}

#[test]
fn definitions_stop_at_the_first_incomplete_one() {
    let p = parse(
        br#"{"definitions":[
          {"name":"a","value":"1","type":"GAUGE"},
          {"name":"b","value":"1","type":"HISTOGRAM"},
          {"name":"c","value":"1","type":1},
          {"name":"","value":"1"},
          {"name":"e","value":"1"}]}"#,
    )
    .unwrap();
    let kinds: Vec<_> = p
        .config
        .definitions
        .iter()
        .map(|d| (d.name.as_str(), d.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("a", DefinitionType::Gauge),
            ("b", DefinitionType::Histogram),
            ("c", DefinitionType::Counter)
        ]
    );
    assert!(p
        .warnings
        .iter()
        .any(|w| w.starts_with("definitions[3]: empty name or value")));
}

/// Istio 1.16 `plugin.cc:505-512`: `JsonGetField<std::string_view>(j, "metadata_mode")`
/// compared with the two non-default enum names; everything else is the local-node mode.
#[test]
fn metadata_mode_enum_names() {
    let mode = |json: &str| {
        let p = parse(json.as_bytes()).unwrap();
        (p.config.metadata_mode, p.warnings)
    };
    assert_eq!(mode("{}"), (MetadataMode::LocalNode, vec![]));
    assert_eq!(
        mode(r#"{"metadata_mode":"UPSTREAM_HOST_METADATA_MODE"}"#),
        (MetadataMode::UpstreamHost, vec![])
    );
    assert_eq!(
        mode(r#"{"metadata_mode":"CLUSTER_METADATA_MODE"}"#),
        (MetadataMode::Cluster, vec![])
    );
    assert_eq!(
        mode(r#"{"metadata_mode":"LOCAL_NODE_METADATA_MODE"}"#),
        (MetadataMode::LocalNode, vec![])
    );
    // The 1.16 plugin reads only the snake_case key (no 1.17 PluginConfig has the field).
    assert_eq!(
        mode(r#"{"metadataMode":"UPSTREAM_HOST_METADATA_MODE"}"#),
        (MetadataMode::LocalNode, vec![])
    );
}

/// Bad values: Istio silently falls back to the local node (a string compare, not a protobuf
/// enum parse, so neither the integer `1` nor a lower-case name selects a mode); we match that
/// and log a line naming the field.
#[test]
fn metadata_mode_bad_values_fall_back_to_local_node() {
    for json in [
        r#"{"metadata_mode":"upstream_host_metadata_mode"}"#,
        r#"{"metadata_mode":"UPSTREAM_HOST"}"#,
        r#"{"metadata_mode":""}"#,
        r#"{"metadata_mode":1}"#,
        r#"{"metadata_mode":null}"#,
        r#"{"metadata_mode":["UPSTREAM_HOST_METADATA_MODE"]}"#,
    ] {
        let p = parse(json.as_bytes()).unwrap();
        assert_eq!(p.config.metadata_mode, MetadataMode::LocalNode, "{json}");
        assert_eq!(p.warnings.len(), 1, "{json}: {:?}", p.warnings);
        assert!(p.warnings[0].starts_with("metadata_mode: "), "{json}");
        assert!(
            p.warnings[0].ends_with("using LOCAL_NODE_METADATA_MODE"),
            "{json}"
        );
    }
    let p = parse(br#"{"metadata_mode":1}"#).unwrap();
    assert_eq!(
        p.warnings,
        vec!["metadata_mode: expected an enum name string, got a number; using LOCAL_NODE_METADATA_MODE"]
    );
}
