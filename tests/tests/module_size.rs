//! The size budget: each plugin at most 1 MiB after wasm-opt, so it fits a Kubernetes ConfigMap
//! (whose whole object is capped at 1 MiB). Istio's own stats module was about 1.5 MB.

const BUDGET: u64 = 1024 * 1024;

#[test]
fn each_plugin_fits_a_configmap() {
    let report = xtask::plugins::build().expect("plugins build");
    for m in &report.modules {
        println!(
            "{}: {} bytes ({} before wasm-opt, optimised: {})",
            m.file.display(),
            m.final_bytes,
            m.cargo_bytes,
            m.optimised
        );
        if !m.optimised {
            // Without binaryen the budget applies to cargo's output, which is larger: still a
            // real check, only stricter.
            println!("wasm-opt is not installed (apt-get install binaryen); checking the unoptimised size");
        }
        assert!(
            m.final_bytes <= BUDGET,
            "{} is {} bytes, over the 1 MiB budget",
            m.file.display(),
            m.final_bytes
        );
    }
}
