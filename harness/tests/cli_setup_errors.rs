//! Setup failures of `harness replay` / `harness check`: each gives exit 1 and a message that
//! names the problem; `harness check` on the shipped set succeeds.

mod cli_common;
use cli_common::*;

const SAMPLE: &str = "testdata/traffic/cli/inbound_basic.jsonl";

#[test]
fn missing_wasm_module_is_exit_1_naming_the_file() {
    let empty = temp_dir("no-wasm");
    let run = harness(
        &["replay", "--wasm-dir", empty.to_str().unwrap(), SAMPLE],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("not found at"), "{}", run.stderr);
    assert!(run.stderr.contains(".wasm"), "{}", run.stderr);
}

#[test]
fn bad_envoyfilter_yaml_is_exit_1() {
    let dir = temp_dir("bad-ef");
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: [\n",
    )
    .unwrap();
    let run = replay(&["--envoyfilter", file.to_str().unwrap(), SAMPLE]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("EnvoyFilters:"), "{}", run.stderr);
    assert!(run.stderr.contains("broken.yaml"), "{}", run.stderr);
}

#[test]
fn missing_envoyfilter_path_and_node_file_are_exit_1() {
    let run = replay(&["--envoyfilter", "no/such/dir", SAMPLE]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no/such/dir"), "{}", run.stderr);
    let run = replay(&["--node", "no/such/node.yaml", SAMPLE]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("--node no/such/node.yaml"),
        "{}",
        run.stderr
    );
    let run = replay(&["--proxy-version", "1.18.0", SAMPLE]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("1.13 to 1.17"), "{}", run.stderr);
}

/// The frozen Istio-default 1.17 set with every plugin configuration of `file` replaced by
/// `config` (one line inside each YAML block scalar).
fn replace_configurations(text: &str, config: &str) -> String {
    let marker = "value: |\n";
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find(marker) {
        let start = pos + marker.len();
        out.push_str(&rest[..start]);
        let body = &rest[start..];
        let indent = body.len() - body.trim_start_matches(' ').len();
        // The block ends at the first line less indented than its first line.
        let mut end = 0;
        for line in body.split_inclusive('\n') {
            let this = line.len() - line.trim_start_matches(' ').len();
            if end > 0 && this < indent {
                break;
            }
            end += line.len();
        }
        out.push_str(&format!("{}{config}\n", " ".repeat(indent)));
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

fn with_config(file: &str, config: &str) -> std::path::PathBuf {
    let src = root().join(ISTIO_DEFAULT_1_17);
    let dir = temp_dir(&format!("config-{}", file.trim_end_matches(".yaml")));
    for f in [
        "stats-filter.yaml",
        "tcp-stats-filter.yaml",
        "attributegen-filter.yaml",
    ] {
        let mut text = std::fs::read_to_string(src.join(f)).unwrap();
        if f == file {
            text = replace_configurations(&text, config);
        }
        std::fs::write(dir.join(f), text).unwrap();
    }
    dir
}

/// A module whose `proxy_on_configure` returns false (hand-written WAT: the minimal ABI 0.2.1
/// exports, VM start OK, configure rejected). Envoy fails "to configure base Wasm plugin" and
/// NACKs the listener; replay and check both exit 1 and say so. (Neither of our plugins rejects:
/// like Istio's, they log bad configuration and degrade.)
#[test]
fn plugin_rejecting_its_configuration_is_exit_1() {
    let wasm = temp_dir("reject-wasm");
    let module = wat::parse_str(
        r#"(module
          (memory (export "memory") 2)
          (func (export "_initialize"))
          (func (export "proxy_abi_version_0_2_1"))
          (func (export "malloc") (param i32) (result i32) i32.const 1024)
          (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024)
          (func (export "proxy_on_context_create") (param i32 i32))
          (func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 1)
          (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    std::fs::write(wasm.join("stats_plugin.wasm"), module).unwrap();
    std::fs::copy(
        wasm_dir().join("attributegen_plugin.wasm"),
        wasm.join("attributegen_plugin.wasm"),
    )
    .unwrap();
    let run = harness(
        &[
            "replay",
            "--wasm-dir",
            wasm.to_str().unwrap(),
            "--envoyfilter",
            ISTIO_DEFAULT_1_17,
            SAMPLE,
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("Failed to configure base Wasm plugin"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("istio.stats"), "{}", run.stderr);

    let check = harness(
        &[
            "check",
            "--wasm-dir",
            wasm.to_str().unwrap(),
            "--envoyfilter",
            ISTIO_DEFAULT_1_17,
        ],
        None,
    );
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(check.stdout.contains("REJECTED"), "{}", check.stdout);
}

/// istio.stats never rejects (Istio: a false onConfigure would crash the proxy); a configuration
/// that is not JSON disables its metrics with a warning. `replay` goes on (exit 0, no istio_*
/// series), `check` reports the warning and exits 1.
#[test]
fn stats_config_that_is_not_json_is_a_check_failure() {
    let dir = with_config("stats-filter.yaml", r#"{"metrics": ["#);
    let run = replay(&["--envoyfilter", dir.to_str().unwrap(), SAMPLE]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot parse plugin configuration JSON"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("istio_requests_total"),
        "{}",
        run.stdout
    );

    let wasm = wasm_dir();
    let check = harness(
        &[
            "check",
            "--wasm-dir",
            wasm.to_str().unwrap(),
            "--envoyfilter",
            dir.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains("cannot parse plugin configuration JSON"),
        "{}",
        check.stdout
    );
    assert!(
        check.stderr.contains("configuration problem"),
        "{}",
        check.stderr
    );
}

#[test]
fn check_on_the_shipped_set_reports_every_plugin_configured() {
    let wasm = wasm_dir();
    let run = harness(&["check", "--wasm-dir", wasm.to_str().unwrap()], None);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("SidecarOutbound http istio.stats"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("SidecarInbound network istio.stats"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("istio.attributegen"), "{}", run.stdout);
    assert!(run.stdout.contains(" plugin(s) loaded"), "{}", run.stdout);
    assert!(!run.stdout.contains("REJECTED"), "{}", run.stdout);
}

#[test]
fn render_of_the_shipped_schema_reproduces_envoyfilters() {
    let out = temp_dir("render-shipped");
    let run = harness(
        &[
            "render",
            "--istio-operator",
            "envoyfilters/schema/istio-operator.yaml",
            "--attributegen",
            "envoyfilters/schema/attributegen.yaml",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for minor in 13..=17 {
        for file in [
            "stats-filter.yaml",
            "tcp-stats-filter.yaml",
            "attributegen-filter.yaml",
        ] {
            let rel = format!("1.{minor}/{file}");
            let got = std::fs::read_to_string(out.join(&rel)).unwrap();
            let shipped = std::fs::read_to_string(root().join("envoyfilters").join(&rel)).unwrap();
            assert_eq!(got, shipped, "{rel}");
        }
    }
}
