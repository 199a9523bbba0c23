//! `harness replay`: setup → proxy → every traffic line → Prometheus text on stdout.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::args::ReplayArgs;
use super::load::{describe_failure, format_log, load_proxy, LoadFailure};
use super::output::{progress_bar, prometheus_text, write_stdout, MAX_PROBLEMS_SHOWN};
use super::setup::prepare;
use crate::abi::LogLevel;
use crate::proxy::Proxy;
use crate::replay::run::{peak_rss_kib, replay_source, EventSink, Problem, Summary};
use crate::stream::{HttpExchange, HttpPlan, Reload, TcpConnection};
use stats_sink::exposition::{self, Exposition};

/// Runs events on the proxy; plugin log lines at warning or above go to stderr (capped), and
/// the log buffer is drained after every event so memory stays flat.
struct ProxySink<'a> {
    proxy: &'a mut Proxy,
    logs_shown: usize,
    logs_dropped: usize,
}

impl ProxySink<'_> {
    fn drain_logs(&mut self) {
        if self.proxy.logs().is_empty() {
            return;
        }
        for l in self.proxy.logs() {
            if l.level >= LogLevel::Warn {
                if self.logs_shown < MAX_PROBLEMS_SHOWN {
                    eprintln!("log: {}", format_log(l));
                    self.logs_shown += 1;
                } else {
                    self.logs_dropped += 1;
                }
            }
        }
        self.proxy.clear_logs();
    }
}

fn trap_error(traps: &[crate::vm::TrapReport]) -> Result<(), String> {
    match traps.first() {
        None => Ok(()),
        Some(t) => Err(t.to_string().lines().next().unwrap_or("trap").to_string()),
    }
}

impl EventSink for ProxySink<'_> {
    fn http(&mut self, exchange: &HttpExchange) -> Result<(), String> {
        let out = self.proxy.run_http(exchange);
        self.drain_logs();
        trap_error(&out.traps)
    }

    fn tcp(&mut self, connection: &TcpConnection) -> Result<(), String> {
        let out = self.proxy.run_tcp(connection);
        self.drain_logs();
        trap_error(&out.traps)
    }

    fn http_planned(&mut self, exchange: &HttpExchange, plan: &HttpPlan) -> Result<(), String> {
        let out = self.proxy.run_http_planned(exchange, plan);
        self.drain_logs();
        trap_error(&out.traps)
    }

    fn reload(&mut self, reload: &Reload) -> Result<(), String> {
        let result = self.proxy.reload(reload);
        let traps = self.proxy.take_traps();
        self.drain_logs();
        match result {
            Ok(_) => trap_error(&traps),
            Err(e) => Err(format!(
                "reload rejected, as Envoy would NACK the update: {e}"
            )),
        }
    }
}

/// `--validate`: decoding only.
struct NullSink;

impl EventSink for NullSink {
    fn http(&mut self, _: &HttpExchange) -> Result<(), String> {
        Ok(())
    }
    fn tcp(&mut self, _: &TcpConnection) -> Result<(), String> {
        Ok(())
    }
    fn http_planned(&mut self, _: &HttpExchange, _: &HttpPlan) -> Result<(), String> {
        Ok(())
    }
}

fn validate(args: &ReplayArgs) -> ExitCode {
    let mut summary = Summary::default();
    let mut hidden = 0usize;
    for path in &args.traffic {
        let name = path.display().to_string();
        let mut shown = 0usize;
        let mut report_problem = |p: Problem| {
            if shown < MAX_PROBLEMS_SHOWN {
                eprintln!("{p}");
                shown += 1;
            } else {
                hidden += 1;
            }
        };
        if path == Path::new("-") {
            replay_source(
                "-",
                io::stdin().lock(),
                &mut NullSink,
                &mut summary,
                &mut report_problem,
            );
            continue;
        }
        match File::open(path) {
            Ok(f) => {
                let input = BufReader::with_capacity(1 << 16, f);
                replay_source(
                    &name,
                    input,
                    &mut NullSink,
                    &mut summary,
                    &mut report_problem,
                );
            }
            Err(e) => return fail(&format!("traffic file {name}: {e}")),
        }
    }
    if hidden > 0 {
        eprintln!("… {hidden} more line problems not shown");
    }
    eprintln!("harness replay --validate: {summary}");
    if args.bench {
        eprintln!(
            "bench: decoded {} events in {:.3} s = {:.0} events/s; peak RSS {} MiB",
            summary.events,
            summary.wall.as_secs_f64(),
            summary.events_per_second(),
            peak_rss_kib().map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    if summary.lines_skipped > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn run(args: &ReplayArgs) -> ExitCode {
    if args.validate {
        return validate(args);
    }
    let started = Instant::now();
    // Read before replaying: a bad expectation is a usage error, found before the work.
    let expected = match args.expect.as_deref().map(read_expectation).transpose() {
        Ok(e) => e,
        Err(e) => return fail(&e),
    };
    let mut note = |n: String| eprintln!("note: {n}");
    let setup = match prepare(&args.setup, &mut note) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    for path in &args.traffic {
        if path != Path::new("-") && !path.is_file() {
            return fail(&format!("traffic file {}: not found", path.display()));
        }
    }
    let (mut proxy, report) = match load_proxy(&setup, &mut note) {
        Ok(p) => p,
        Err(LoadFailure::Setup(e)) => return fail(&e),
        Err(LoadFailure::Plugin(e)) => {
            return fail(&format!(
                "a plugin was rejected, as Envoy would reject the listener:\n{}",
                describe_failure(&e)
            ))
        }
    };
    for p in &report.plugins {
        if let Some(why) = &p.skipped {
            eprintln!("note: fail_open plugin {} skipped: {why}", p.plugin_name);
        }
        for l in p.logs.iter().filter(|l| l.level >= LogLevel::Warn) {
            eprintln!("log: {}", format_log(l));
        }
    }
    proxy.clear_logs();
    let setup_time = started.elapsed();

    let mut sink = ProxySink {
        proxy: &mut proxy,
        logs_shown: 0,
        logs_dropped: 0,
    };
    let mut summary = Summary::default();
    let mut hidden = 0usize;
    for path in &args.traffic {
        let name = path.display().to_string();
        let mut shown = 0usize;
        let mut report_problem = |p: Problem| {
            if shown < MAX_PROBLEMS_SHOWN {
                eprintln!("{p}");
                shown += 1;
            } else {
                hidden += 1;
            }
        };
        if path == Path::new("-") {
            let stdin = io::stdin().lock();
            replay_source("-", stdin, &mut sink, &mut summary, &mut report_problem);
            continue;
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return fail(&format!("traffic file {name}: {e}")),
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let input: Box<dyn BufRead> = match progress_bar(len) {
            Some(bar) => Box::new(BufReader::with_capacity(1 << 16, bar.wrap_read(file))),
            None => Box::new(BufReader::with_capacity(1 << 16, file)),
        };
        replay_source(&name, input, &mut sink, &mut summary, &mut report_problem);
    }
    let (logs_dropped, _) = (sink.logs_dropped, sink.logs_shown);
    if hidden > 0 {
        eprintln!("… {hidden} more line problems not shown");
    }
    if logs_dropped > 0 {
        eprintln!("… {logs_dropped} more plugin log lines at warning or above not shown");
    }

    let text = (!args.no_output || expected.is_some()).then(|| prometheus_text(&proxy, &setup));
    if let (false, Some(text)) = (args.no_output, &text) {
        if let Err(e) = write_stdout(text) {
            // A closed pipe (`| head`) is not a replay failure.
            if e.kind() != io::ErrorKind::BrokenPipe {
                return fail(&format!("writing stdout: {e}"));
            }
        }
    }
    eprintln!("harness replay: {summary}");
    if args.bench {
        eprintln!(
            "bench: setup {:.3} s (module compile + configure); replay {} events in {:.3} s = {:.0} events/s on one core; peak RSS {} MiB",
            setup_time.as_secs_f64(),
            summary.events,
            summary.wall.as_secs_f64(),
            summary.events_per_second(),
            peak_rss_kib().map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
        );
    }
    match (&expected, &text) {
        (Some((path, want)), Some(text)) => check_expectation(path, want, text),
        _ => ExitCode::SUCCESS,
    }
}

/// `--expect FILE`, parsed.
fn read_expectation(path: &Path) -> Result<(String, Exposition), String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--expect {name}: {e}"))?;
    let want = exposition::parse(&text).map_err(|e| format!("--expect {name}: {e}"))?;
    if want.samples.is_empty() && want.types.is_empty() {
        return Err(format!("--expect {name}: no series and no # TYPE line"));
    }
    Ok((name, want))
}

/// Compares the replay's exposition with the expectation; exit 3 on any difference.
fn check_expectation(name: &str, want: &Exposition, text: &str) -> ExitCode {
    let got = match exposition::parse(text) {
        Ok(g) => g,
        Err(e) => return fail(&format!("the replay's own output does not parse: {e}")),
    };
    let problems = exposition::compare(want, &got);
    if problems.is_empty() {
        eprintln!(
            "expect {name}: ok ({} series in {} families)",
            want.samples.len(),
            want.families().len()
        );
        return ExitCode::SUCCESS;
    }
    let n = problems.len();
    eprintln!(
        "expect {name}: {n} difference{}",
        if n == 1 { "" } else { "s" }
    );
    for p in &problems {
        eprintln!("  {}", p.replace('\n', "\n  "));
    }
    ExitCode::from(3)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("harness replay: error: {msg}");
    ExitCode::from(1)
}
