//! `/stats/prometheus` as Envoy renders it for Wasm stats under Istio's bootstrap: tag extraction
//! with the bootstrap `stats_tags` regexes, `wasmcustom.` stripped with no `envoy_` prefix, counters
//! then gauges then histograms, `# TYPE` lines, Envoy's default histogram buckets.
//! (To be implemented: see the harness issue.)
