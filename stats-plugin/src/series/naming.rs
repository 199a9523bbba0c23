//! Stat-name composition (`StatGen::resolve`, `extensions/stats/plugin.h:198-221`) and the
//! SDK-style names of `istio_build` and `metric_cache_count` (stats-spec §5.4).

use crate::schema::Tag;

/// `tag=.=value;.;…;.;istio_<metric>`: every emitted tag as name, value separator, value, field
/// separator, then the metric name. `value(slot)` supplies the dimension values.
pub fn stat_name<'a>(
    metric: &str,
    tags: &[Tag],
    field_separator: &str,
    value_separator: &str,
    value: impl Fn(usize) -> &'a str,
) -> String {
    let mut size = metric.len();
    for t in tags {
        size += t.name.len() + value_separator.len() + field_separator.len() + value(t.slot).len();
    }
    let mut n = String::with_capacity(size);
    for t in tags {
        n.push_str(&t.name);
        n.push_str(value_separator);
        n.push_str(value(t.slot));
        n.push_str(field_separator);
    }
    n.push_str(metric);
    n
}

/// `Metric(Gauge, "istio_build", {component, tag}).record(1, "proxy", version + ";")` with the
/// C++ SDK's default `.` separators: `component.proxy.tag.<version>;.istio_build`. An empty
/// version is `unknown` (`plugin.cc:466-473`).
pub fn istio_build_name(istio_version: &str) -> String {
    let version = if istio_version.is_empty() {
        "unknown"
    } else {
        istio_version
    };
    format!("component.proxy.tag.{version};.istio_build")
}

/// `metric_cache_count{wasm_filter="stats_filter", cache="hit"|"miss"}` (`plugin.h:239-243`).
pub const CACHE_HIT_NAME: &str = "wasm_filter.stats_filter.cache.hit.metric_cache_count";
pub const CACHE_MISS_NAME: &str = "wasm_filter.stats_filter.cache.miss.metric_cache_count";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_like_istio() {
        let tags = vec![
            Tag {
                name: "reporter".into(),
                slot: 0,
            },
            Tag {
                name: "grpc_response_status".into(),
                slot: 1,
            },
        ];
        let values = ["source", ""];
        let n = stat_name("istio_requests_total", &tags, ";.;", "=.=", |s| values[s]);
        assert_eq!(
            n,
            "reporter=.=source;.;grpc_response_status=.=;.;istio_requests_total"
        );
        assert_eq!(
            stat_name("istio_get_calls", &[], ";.;", "=.=", |_| ""),
            "istio_get_calls"
        );
    }

    #[test]
    fn build_gauge_name_matches_istio_build_yaml() {
        // P17 testdata/metric/istio_build.yaml: istio_build{component="proxy",tag="1.5-dev"}
        // extracted by `(tag\.(.+?);\.)` from this name.
        assert_eq!(
            istio_build_name("1.5-dev"),
            "component.proxy.tag.1.5-dev;.istio_build"
        );
        assert_eq!(
            istio_build_name(""),
            "component.proxy.tag.unknown;.istio_build"
        );
    }
}
