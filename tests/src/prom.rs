//! Golden scenarios over the Prometheus text exposition. The parser itself lives in
//! `stats_sink::exposition` (the CLI's `--expect` uses it too) and is re-exported here.

pub use stats_sink::exposition::{
    diff_labels, parse, render_labels, Exposition, ParseError, Sample,
};

/// Golden scenarios as data (`testdata/istio/<scenario>/`, described in its README): loading,
/// checking, replaying, and comparing the replay's Prometheus text with the expectation.
pub mod golden {
    use super::{diff_labels, render_labels, Exposition};
    use serde_json::Value as Json;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    /// `testdata/istio` in the workspace.
    pub fn istio_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("testdata")
            .join("istio")
    }

    /// Reads a file whose body is JSON after leading `#` comment lines (our `*.yaml` data files
    /// are written that way so that they carry a header comment and still parse as JSON).
    pub fn read_commented_json(path: &Path) -> Result<Json, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let body: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        serde_json::from_str(&body).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// One expected series.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ExpectedSeries {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
        /// The family's `# TYPE` (`counter`, `gauge`, `histogram`), when the expectation names it.
        pub kind: Option<String>,
        /// Why a value deviates from the template, when it does.
        pub note: Option<String>,
    }

    /// `expected.yaml`.
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct Expected {
        pub source: String,
        pub series: Vec<ExpectedSeries>,
        /// Families that must not appear at all.
        pub absent: Vec<String>,
        /// Families that must hold exactly the listed series (default: every family named in
        /// `series`, as `driver.ExactStat` compares a whole family).
        pub exact_families: Vec<String>,
    }

    impl Expected {
        pub fn from_json(v: &Json) -> Result<Self, String> {
            let str_list = |key: &str| -> Result<Vec<String>, String> {
                match v.get(key) {
                    None => Ok(Vec::new()),
                    Some(Json::Array(a)) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| format!("{key}: not a string: {x}"))
                        })
                        .collect(),
                    Some(other) => Err(format!("{key}: not a list: {other}")),
                }
            };
            let mut series = Vec::new();
            for (i, s) in v
                .get("series")
                .and_then(Json::as_array)
                .ok_or("series: missing or not a list")?
                .iter()
                .enumerate()
            {
                let name = s
                    .get("name")
                    .and_then(Json::as_str)
                    .ok_or(format!("series[{i}].name missing"))?;
                let value = s
                    .get("value")
                    .and_then(Json::as_f64)
                    .ok_or(format!("series[{i}].value missing or not a number"))?;
                let mut labels = BTreeMap::new();
                for (k, lv) in s
                    .get("labels")
                    .and_then(Json::as_object)
                    .ok_or(format!("series[{i}].labels missing"))?
                {
                    let lv = lv
                        .as_str()
                        .ok_or(format!("series[{i}].labels.{k}: not a string"))?;
                    labels.insert(k.clone(), lv.to_string());
                }
                series.push(ExpectedSeries {
                    name: name.to_string(),
                    labels,
                    value,
                    kind: s.get("type").and_then(Json::as_str).map(str::to_string),
                    note: s.get("note").and_then(Json::as_str).map(str::to_string),
                });
            }
            let mut exact_families = str_list("exact_families")?;
            if v.get("exact_families").is_none() {
                for s in &series {
                    if !exact_families.contains(&s.name) {
                        exact_families.push(s.name.clone());
                    }
                }
            }
            Ok(Self {
                source: v
                    .get("source")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                series,
                absent: str_list("absent")?,
                exact_families,
            })
        }
    }

    /// Every difference between the expectation and the exposition, one message each (empty
    /// when they agree). Labels are compared as sets; names and values exactly.
    pub fn compare(expected: &Expected, actual: &Exposition) -> Vec<String> {
        let mut problems = Vec::new();
        for e in &expected.series {
            let note = e
                .note
                .as_deref()
                .map(|n| format!(" [note: {n}]"))
                .unwrap_or_default();
            match actual.find(&e.name, &e.labels) {
                Some(s) if s.value == e.value => {}
                Some(s) => problems.push(format!(
                    "{}{}: value: expected {}, got {}{note}",
                    e.name,
                    render_labels(&e.labels),
                    e.value,
                    s.value
                )),
                None => match actual.closest(&e.name, &e.labels) {
                    Some(s) => problems.push(format!(
                        "{}: no series with the expected labels{note}; closest (value {}):\n{}",
                        e.name,
                        s.value,
                        diff_labels(&e.labels, &s.labels).trim_end()
                    )),
                    None => problems.push(format!(
                        "{}: missing (no series of that name){note}; present: {:?}",
                        e.name,
                        actual.names()
                    )),
                },
            }
        }
        for e in &expected.series {
            if let Some(kind) = &e.kind {
                let actual_kind = actual.types.get(&e.name);
                if actual_kind != Some(kind) && actual.has_family(&e.name) {
                    problems.push(format!(
                        "{}: TYPE {:?}, expected {kind}",
                        e.name, actual_kind
                    ));
                }
            }
        }
        for family in &expected.exact_families {
            for s in actual.samples.iter().filter(|s| &s.name == family) {
                let listed = expected
                    .series
                    .iter()
                    .any(|e| &e.name == family && e.labels == s.labels);
                if !listed {
                    problems.push(format!(
                        "{family}: unexpected series {} {}",
                        render_labels(&s.labels),
                        s.value
                    ));
                }
            }
        }
        for family in &expected.absent {
            if actual.has_family(family) {
                problems.push(format!("absent family {family} is present"));
            }
        }
        problems
    }

    /// Whether a scenario can run yet.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Status {
        Ready,
        /// Not expressible yet, with the reason.
        Blocked(String),
    }

    /// One scenario folder.
    #[derive(Debug, Clone)]
    pub struct Scenario {
        pub name: String,
        pub dir: PathBuf,
        pub source: String,
        pub proxy_version: String,
        pub node: PathBuf,
        pub traffic: PathBuf,
        pub envoyfilters: Vec<PathBuf>,
        pub status: Status,
        /// Set when the scenario is known to fail because of a named defect elsewhere in the
        /// project: the runner still runs it, reports the diff, and fails once it passes so
        /// the marker gets removed.
        pub known_failure: Option<String>,
        pub expected: Expected,
    }

    impl Scenario {
        /// The `harness replay` arguments of this scenario, with the freshly built plugins.
        pub fn setup_args(&self) -> harness::cli::args::SetupArgs {
            harness::cli::args::SetupArgs {
                proxy_version: self.proxy_version.clone(),
                node: Some(self.node.clone()),
                envoyfilter: self.envoyfilters.clone(),
                wasm_dir: Some(xtask::plugins::ensure_built()),
                extra_stat_tags: Vec::new(),
            }
        }

        pub fn load(dir: &Path) -> Result<Self, String> {
            let m = read_commented_json(&dir.join("scenario.yaml"))?;
            let get = |k: &str| {
                m.get(k)
                    .and_then(Json::as_str)
                    .map(str::to_string)
                    .ok_or(format!("scenario.yaml: {k} missing"))
            };
            let status = match get("status")?.as_str() {
                "ready" => Status::Ready,
                "blocked" => Status::Blocked(get("blocked")?),
                other => return Err(format!("scenario.yaml: unknown status {other:?}")),
            };
            let envoyfilters = m
                .get("envoyfilters")
                .and_then(Json::as_array)
                .ok_or("scenario.yaml: envoyfilters missing")?
                .iter()
                .map(|f| {
                    f.as_str()
                        .map(|f| dir.join(f))
                        .ok_or("scenario.yaml: envoyfilters: not a string".to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The book cases assert in code and carry no expected.yaml.
            let expected_file = dir.join("expected.yaml");
            let expected = if expected_file.is_file() {
                Expected::from_json(&read_commented_json(&expected_file)?)
                    .map_err(|e| format!("expected.yaml: {e}"))?
            } else {
                Expected::default()
            };
            Ok(Self {
                name: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                dir: dir.to_path_buf(),
                source: get("source")?,
                proxy_version: get("proxy_version")?,
                node: dir.join(get("node")?),
                traffic: dir.join(get("traffic")?),
                envoyfilters,
                status,
                known_failure: m
                    .get("known_failure")
                    .and_then(Json::as_str)
                    .map(str::to_string),
                expected,
            })
        }

        /// The data is usable: the node loads with the replay's node reader, every traffic line
        /// decodes with the replay decoder (no errors; no unknown fields outside blocked
        /// scenarios), the EnvoyFilters patch into chains (as `harness replay` builds them) that
        /// hold a Wasm stats filter (root id `stats_*`) for every direction and kind the traffic uses, and a
        /// ready scenario expects something.
        pub fn check_files(&self) -> Result<(), String> {
            use harness::replay::{chains, node, traffic};
            let (local, _) = node::load_node(&self.node)?;
            if local.id.is_empty() {
                return Err("node.yaml: no id".into());
            }
            let version = node::parse_proxy_version(&self.proxy_version)?;
            let loaded = chains::load_chains(&self.envoyfilters, &version, &local)?;
            let file = std::fs::File::open(&self.traffic)
                .map_err(|e| format!("{}: {e}", self.traffic.display()))?;
            let mut events = 0;
            for item in traffic::TrafficReader::new(std::io::BufReader::new(file)) {
                let ev = item.map_err(|e| format!("traffic.jsonl {e}"))?;
                if self.status == Status::Ready && !ev.warnings.is_empty() {
                    return Err(format!("traffic.jsonl line {}: {:?}", ev.line, ev.warnings));
                }
                let (direction, http) = match &ev.event {
                    traffic::Event::Http(h) => (h.direction, true),
                    traffic::Event::Tcp(t) => (t.direction, false),
                    // A listener update: nothing to route.
                    traffic::Event::Reload(_) => continue,
                };
                let ctx = chains::context_of(direction);
                let map = if http {
                    &loaded.chains.http
                } else {
                    &loaded.chains.network
                };
                let names: Vec<&str> = map
                    .get(&ctx)
                    .map(|fs| fs.iter().map(|f| f.name.as_str()).collect())
                    .unwrap_or_default();
                // The stats filter is known by its root id (`stats_inbound` / `stats_outbound`),
                // not its name: Istio's tests name it freely (`istio.stats`, `stats_outbound0`).
                let has_wasm_stats = chains::wasm_filters(&loaded.chains)
                    .iter()
                    .any(|(c, h, w)| *c == ctx && *h == http && w.root_id.starts_with("stats_"));
                if !has_wasm_stats {
                    return Err(format!(
                        "traffic.jsonl line {}: no Wasm stats filter (root id stats_*) in the {} chain for {direction:?} (chain: {names:?})",
                        ev.line,
                        if http { "HTTP" } else { "network" }
                    ));
                }
                events += 1;
            }
            if events == 0 {
                return Err("traffic.jsonl: no events".into());
            }
            if self.status == Status::Ready
                && self.expected.series.is_empty()
                && self.expected.absent.is_empty()
                && self.dir.join("expected.yaml").is_file()
            {
                return Err("expected.yaml: expects nothing".into());
            }
            Ok(())
        }

        /// The filter names of the HTTP chain of a direction, as `harness replay` builds it.
        pub fn http_chain(
            &self,
            direction: harness::stream::Direction,
        ) -> Result<Vec<String>, String> {
            use harness::replay::{chains, node};
            let (local, _) = node::load_node(&self.node)?;
            let version = node::parse_proxy_version(&self.proxy_version)?;
            let loaded = chains::load_chains(&self.envoyfilters, &version, &local)?;
            Ok(loaded
                .chains
                .http
                .get(&chains::context_of(direction))
                .map(|fs| fs.iter().map(|f| f.name.clone()).collect())
                .unwrap_or_default())
        }
    }

    /// Replays one scenario exactly as `harness replay --proxy-version V --node N
    /// --envoyfilter F… TRAFFIC` does (the CLI's own setup, proxy loading, replay loop and
    /// Prometheus rendering), with the plugins from `xtask::plugins::ensure_built()`, and returns
    /// the Prometheus text. Any line problem, failed event or skipped plugin is an error: golden
    /// traffic must replay cleanly.
    pub fn replay(s: &Scenario) -> Result<String, String> {
        use harness::cli::load::{describe_failure, load_proxy, LoadFailure};
        use harness::cli::output::prometheus_text;
        use harness::cli::setup::prepare;
        use harness::replay::run::{replay_source, Summary};

        let args = s.setup_args();
        let mut notes = Vec::new();
        let setup = prepare(&args, &mut |n| notes.push(n))?;
        let (mut proxy, report) =
            load_proxy(&setup, &mut |n| notes.push(n)).map_err(|e| match e {
                LoadFailure::Setup(m) => m,
                LoadFailure::Plugin(e) => describe_failure(&e),
            })?;
        if let Some(p) = report.plugins.iter().find(|p| p.skipped.is_some()) {
            return Err(format!("plugin {} skipped: {:?}", p.plugin_name, p.skipped));
        }
        let file =
            std::fs::File::open(&s.traffic).map_err(|e| format!("{}: {e}", s.traffic.display()))?;
        let mut sink = ProxySink { proxy: &mut proxy };
        let mut summary = Summary::default();
        let mut problems = Vec::new();
        replay_source(
            "traffic.jsonl",
            std::io::BufReader::new(file),
            &mut sink,
            &mut summary,
            &mut |p| problems.push(p.to_string()),
        );
        if !problems.is_empty() {
            return Err(format!("replay problems:\n{}", problems.join("\n")));
        }
        if summary.events == 0 {
            return Err("no events replayed".into());
        }
        Ok(prometheus_text(&proxy, &setup))
    }

    /// Runs events on the proxy as the CLI's sink does; a plugin trap fails the event.
    struct ProxySink<'a> {
        proxy: &'a mut harness::proxy::Proxy,
    }

    impl harness::replay::run::EventSink for ProxySink<'_> {
        fn http(&mut self, exchange: &harness::stream::HttpExchange) -> Result<(), String> {
            let out = self.proxy.run_http(exchange);
            self.proxy.clear_logs();
            match out.traps.first() {
                Some(t) => Err(t.to_string()),
                None => Ok(()),
            }
        }

        fn tcp(&mut self, connection: &harness::stream::TcpConnection) -> Result<(), String> {
            let out = self.proxy.run_tcp(connection);
            self.proxy.clear_logs();
            match out.traps.first() {
                Some(t) => Err(t.to_string()),
                None => Ok(()),
            }
        }

        fn http_planned(
            &mut self,
            exchange: &harness::stream::HttpExchange,
            plan: &harness::stream::HttpPlan,
        ) -> Result<(), String> {
            let out = self.proxy.run_http_planned(exchange, plan);
            self.proxy.clear_logs();
            match out.traps.first() {
                Some(t) => Err(t.to_string()),
                None => Ok(()),
            }
        }

        fn reload(&mut self, reload: &harness::stream::Reload) -> Result<(), String> {
            let result = self.proxy.reload(reload);
            self.proxy.clear_logs();
            if let Some(t) = self.proxy.take_traps().first() {
                return Err(t.to_string());
            }
            result.map(|_| ()).map_err(|e| e.to_string())
        }
    }

    /// Every scenario folder (a direct child holding `scenario.yaml`), sorted by name. Panics
    /// with the folder's name when its data does not load: that is a broken test fixture.
    pub fn load_all(dir: &Path) -> Vec<Scenario> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("scenario.yaml").is_file())
            .collect();
        dirs.sort();
        dirs.iter()
            .map(|d| Scenario::load(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())))
            .collect()
    }
}
