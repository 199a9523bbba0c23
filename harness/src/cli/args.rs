//! The command line (clap derive). Defaults are documented in the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version,
    about = "Replays traffic through Istio's telemetry Wasm plugins on an Envoy stand-in and prints /stats/prometheus",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Replay JSON Lines traffic through the proxy's filter chains; print the Prometheus text.
    ///
    /// Stdout: what Envoy's /stats/prometheus shows for the metrics the plugins defined.
    /// Stderr: per-line problems with line numbers, then a summary (events replayed, lines
    /// skipped, wall time, events/s). Exit 0 when the setup loaded (bad traffic lines are skipped
    /// and counted, not fatal); exit 1 with the reason when the setup is unusable (bad node or
    /// EnvoyFilter YAML, missing .wasm, a plugin rejected its configuration, unreadable traffic,
    /// an unreadable `--expect` file); exit 3 when the output differs from `--expect`.
    ///
    /// Traffic format: the replay-format contract (one JSON object per line; blank lines
    /// skipped). Unknown fields are ignored with one warning per field path; a line with a wrong
    /// type or a bad value (unknown response flag, bad RFC 3339 time) is reported and skipped.
    /// Additions to the contract: `"response": null` = stream reset; `response.flags` may be the
    /// integer bitmask; `connection.id`; `grpc_messages: [{"request": N, "response": M}, …]`
    /// (summed into the grpc_stats filter state that feeds the gRPC message counters).
    ///
    /// Time inside and between streams (additions).
    ///
    /// `grpc_messages[].at_ms`: the batch passes grpc_stats that many ms after the stream's
    /// start (0 ≤ at_ms ≤ duration_ms, batches in time order; a batch without it counts from
    /// the request headers on). Periodic ticks (`tcp_reporting_duration`) between batches see
    /// the running totals; a tick due at the same instant as a batch runs first.
    ///
    /// `stop_after_ms` (HTTP, < duration_ms, repeat ≤ 1): the replay stops that long into the
    /// stream, which stays open: headers passed (end_stream false), no body, trailers or
    /// access-log phase; the output is a scrape at that instant. Every later line (of this and
    /// the next TRAFFIC files) is skipped and counted with reason `stopped`.
    ///
    /// `{"kind":"reload","start":T,"vm":"new"|"same"}`: a listener update re-delivering the
    /// loaded EnvoyFilters at T (default: previous line + 1 ms). Old root contexts get
    /// proxy_on_done / proxy_on_delete; new ones are created in new VMs (`new`, default) or in the
    /// running VMs (`same`), with their tick timers starting at T. The stats store keeps every
    /// counter. A reload is not an event: the summary counts it as "N reloads".
    ///
    /// Compiled modules are cached in <workspace>/target/harness-module-cache
    /// (HARNESS_MODULE_CACHE=DIR moves it, =off disables it).
    Replay(ReplayArgs),
    /// Load the chains without traffic; report each plugin's configure result and log lines.
    ///
    /// Exit 0 when every plugin accepted its configuration silently; exit 1 when a plugin
    /// rejected it (proxy_on_configure returned false or the VM failed to start), or logged at
    /// warning level or above while configuring (istio.stats reports bad configuration that way
    /// and degrades instead of rejecting), or when the setup itself is unusable.
    Check(SetupArgs),
    /// Render the per-version EnvoyFilter set from an IstioOperator metric schema.
    Render(RenderArgs),
    /// Write N synthetic HTTP events (the benchmark's traffic) as JSON Lines to stdout.
    GenTraffic(GenArgs),
}

/// Everything that defines the proxy under test.
#[derive(Args, Debug, Clone)]
pub struct SetupArgs {
    /// Istio proxy version: selects the Envoy profile (1.13→Envoy 1.21 … 1.17→Envoy 1.25) and
    /// which EnvoyFilters apply (their proxyVersion regex is matched against it).
    #[arg(long, default_value = "1.17.8")]
    pub proxy_version: String,

    /// The local Envoy node, JSON or YAML {id, cluster, metadata}. Default: the sidecar of
    /// `webapp` in namespace `istioinaction` (ISTIO_VERSION 1.17.8, MESH_ID cluster.local,
    /// CLUSTER_ID Kubernetes, LABELS app=webapp version=v1 + canonical labels), i.e.
    /// testdata/nodes/webapp.yaml.
    #[arg(long, value_name = "FILE")]
    pub node: Option<PathBuf>,

    /// EnvoyFilter file or folder; repeat the flag for more. Default: the workspace's
    /// envoyfilters/1.<minor>/ for --proxy-version.
    #[arg(long, value_name = "PATH")]
    pub envoyfilter: Vec<PathBuf>,

    /// Where `vm_config.code.local.filename` is looked up by file name. Null-VM inline names
    /// `envoy.wasm.stats` / `envoy.wasm.attributegen` map to stats_plugin.wasm /
    /// attributegen_plugin.wasm here (noted on stderr). Default: <workspace>/target/plugins
    /// (`cargo xtask wasm` puts them there).
    #[arg(long, value_name = "DIR")]
    pub wasm_dir: Option<PathBuf>,

    /// Extra stats tag names (comma-separated), added to the node's
    /// PROXY_CONFIG.extraStatTags: each gets Istio's `(T=\.=(.*?);\.;)` extraction rule.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub extra_stat_tags: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub setup: SetupArgs,

    /// Traffic files (JSON Lines); `-` reads standard input.
    #[arg(required = true, value_name = "TRAFFIC")]
    pub traffic: Vec<PathBuf>,

    /// Also print a benchmark line on stderr: setup time, events/s, peak RSS (VmHWM).
    #[arg(long)]
    pub bench: bool,

    /// Do not print the Prometheus text (useful with --bench).
    #[arg(long)]
    pub no_output: bool,

    /// Only decode and check the traffic (no proxy, no plugins): report bad lines and exit 0,
    /// or 2 when any line was skipped.
    #[arg(long, conflicts_with = "expect")]
    pub validate: bool,

    /// Compare the Prometheus text with an expected one (a reviewed earlier output, or a
    /// hand-derived golden): every series in FILE must be present with its value (labels
    /// compared as sets), every `# TYPE` in FILE must match, and every family FILE mentions must
    /// hold no other series; families it does not mention are not compared. Differences go to
    /// stderr, one per line, and the exit code is 3 when there is any.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The IstioOperator holding `values.telemetry.v2.prometheus.configOverride`.
    #[arg(long, value_name = "FILE")]
    pub istio_operator: PathBuf,

    /// An attributegen EnvoyFilter (or its configuration) to render alongside.
    #[arg(long, value_name = "FILE")]
    pub attributegen: Option<PathBuf>,

    /// Output folder (one sub-folder per proxy version). Default: print to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GenArgs {
    /// How many HTTP events to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
}
