//! The replay loop: traffic lines → events → a proxy, one line at a time, with per-line
//! problems reported as they happen and counted for the summary.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::time::{Duration, Instant};

use super::traffic::{Event, LineError, TrafficReader};
use crate::stream::{HttpExchange, HttpPlan, Reload, TcpConnection};

/// Whatever runs the events (the harness proxy; a counter in tests and benchmarks).
pub trait EventSink {
    fn http(&mut self, exchange: &HttpExchange) -> Result<(), String>;
    fn tcp(&mut self, connection: &TcpConnection) -> Result<(), String>;

    /// An HTTP stream with timing inside it (timed gRPC batches, `stop_after_ms`). A sink that
    /// cannot play the timing fails such events rather than replaying them differently.
    fn http_planned(&mut self, exchange: &HttpExchange, plan: &HttpPlan) -> Result<(), String> {
        if plan.is_plain() {
            self.http(exchange)
        } else {
            Err("this sink cannot replay timing inside a stream (grpc_messages[].at_ms, stop_after_ms)".into())
        }
    }

    /// A `{"kind":"reload"}` line. Sinks without plugins have nothing to reload.
    fn reload(&mut self, reload: &Reload) -> Result<(), String> {
        let _ = reload;
        Ok(())
    }
}

/// A problem with one line of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub source: String,
    pub line: usize,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not a valid event: skipped.
    BadLine,
    /// Decoded, but the proxy failed running it (e.g. a plugin trapped).
    EventFailed,
    /// Accepted with a remark (unknown field).
    Warning,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ProblemKind::BadLine => "skipped",
            ProblemKind::EventFailed => "event failed",
            ProblemKind::Warning => "warning",
        };
        write!(f, "{}:{}: {what}: {}", self.source, self.line, self.message)
    }
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Events run (each repeat counts).
    pub events: u64,
    pub http_events: u64,
    pub tcp_events: u64,
    /// Lines decoded into events.
    pub lines_ok: u64,
    pub lines_skipped: u64,
    pub events_failed: u64,
    pub warnings: u64,
    /// `{"kind":"reload"}` lines run (not counted in `events`).
    pub reloads: u64,
    /// Where the replay stopped inside an open stream (`stop_after_ms`): `source:line`. Every
    /// later line, of this source and the next ones, is skipped and counted.
    pub stopped_at: Option<String>,
    /// Skipped lines per reason kind (the field at fault, or the kind of syntax error).
    pub skip_reasons: BTreeMap<String, u64>,
    pub wall: Duration,
}

/// A short key for a skip reason: the field path before `:` (`duration_ms`, `response.flags`),
/// else the start of the message (`EOF while parsing`, `expected value`, `not UTF-8`).
pub fn reason_kind(reason: &str) -> String {
    let head = reason.split(": ").next().unwrap_or(reason);
    head.split(' ').take(3).collect::<Vec<_>>().join(" ")
}

impl Summary {
    pub fn events_per_second(&self) -> f64 {
        let s = self.wall.as_secs_f64();
        if s > 0.0 {
            self.events as f64 / s
        } else {
            0.0
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {} events ({} http, {} tcp) from {} lines; skipped {} bad lines; {} events failed; {} warnings; {:.3} s, {:.0} events/s",
            self.events,
            self.http_events,
            self.tcp_events,
            self.lines_ok,
            self.lines_skipped,
            self.events_failed,
            self.warnings,
            self.wall.as_secs_f64(),
            self.events_per_second()
        )?;
        if self.reloads > 0 {
            write!(f, "; {} reloads", self.reloads)?;
        }
        if let Some(at) = &self.stopped_at {
            write!(f, "; stopped inside the open stream of {at}")?;
        }
        if !self.skip_reasons.is_empty() {
            let reasons: Vec<String> = self
                .skip_reasons
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect();
            write!(f, "; skipped by reason: {}", reasons.join(", "))?;
        }
        Ok(())
    }
}

/// Replays one source into `sink`, calling `report` for every problem as it happens.
/// Returns how many lines were read. The summary accumulates across sources.
pub fn replay_source<R: BufRead, S: EventSink>(
    source: &str,
    input: R,
    sink: &mut S,
    summary: &mut Summary,
    report: &mut dyn FnMut(Problem),
) -> usize {
    let started = Instant::now();
    let mut reader = TrafficReader::new(input);
    let problem = |line, kind, message| Problem {
        source: source.to_string(),
        line,
        kind,
        message,
    };
    let skip =
        |summary: &mut Summary, report: &mut dyn FnMut(Problem), line: usize, reason: String| {
            summary.lines_skipped += 1;
            *summary
                .skip_reasons
                .entry(reason_kind(&reason))
                .or_default() += 1;
            report(problem(line, ProblemKind::BadLine, reason));
        };
    // Not a `for`: each event goes back to the reader when done (`recycle`).
    while let Some(item) = reader.next() {
        if let Some(at) = &summary.stopped_at {
            // Every line is still accounted for after a stop inside an open stream.
            let line = match &item {
                Ok(ev) => ev.line,
                Err(e) => e.line,
            };
            let reason = format!(
                "stopped: the replay stopped inside the open stream of {at} (stop_after_ms)"
            );
            skip(summary, report, line, reason);
            continue;
        }
        let ev = match item {
            Ok(ev) => ev,
            Err(LineError { line, reason }) => {
                skip(summary, report, line, reason);
                continue;
            }
        };
        summary.lines_ok += 1;
        for w in ev.warnings {
            summary.warnings += 1;
            report(problem(ev.line, ProblemKind::Warning, w));
        }
        if let Event::Reload(r) = &ev.event {
            summary.reloads += 1;
            if let Err(e) = sink.reload(r) {
                summary.events_failed += 1;
                report(problem(ev.line, ProblemKind::EventFailed, e));
            }
            continue;
        }
        let stops = ev.plan.stop_after_ns.is_some() && ev.repeat > 0;
        for _ in 0..ev.repeat {
            let result = match &ev.event {
                Event::Http(h) if ev.plan.is_plain() => {
                    summary.http_events += 1;
                    sink.http(h)
                }
                Event::Http(h) => {
                    summary.http_events += 1;
                    sink.http_planned(h, &ev.plan)
                }
                Event::Reload(_) => Ok(()),
                Event::Tcp(t) => {
                    summary.tcp_events += 1;
                    sink.tcp(t)
                }
            };
            summary.events += 1;
            if let Err(e) = result {
                summary.events_failed += 1;
                report(problem(ev.line, ProblemKind::EventFailed, e));
                // One report per line is enough: the repeats would fail the same way.
                break;
            }
        }
        if stops {
            summary.stopped_at = Some(format!("{source}:{}", ev.line));
        }
        reader.recycle(ev.event);
    }
    summary.wall += started.elapsed();
    reader.lines_read()
}

/// Peak resident memory of this process (`VmHWM` in `/proc/self/status`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Count {
        http: Vec<u64>,
        tcp: u64,
    }

    impl EventSink for Count {
        fn http(&mut self, ex: &HttpExchange) -> Result<(), String> {
            if ex.route_name == "boom" {
                return Err("plugin trapped".into());
            }
            self.http.push(ex.duration_ns as u64);
            Ok(())
        }
        fn tcp(&mut self, _: &TcpConnection) -> Result<(), String> {
            self.tcp += 1;
            Ok(())
        }
    }

    #[test]
    fn repeats_problems_and_summary() {
        let text = concat!(
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"repeat\":3,\"duration_ms\":2}\n",
            "garbage\n",
            "\n",
            "{\"kind\":\"tcp\",\"direction\":\"inbound\",\"odd\":1}\n",
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"route_name\":\"boom\",\"repeat\":5}\n",
            "{\"kind\":\"http\",\"direction\":\"outbound\",\"repeat\":0}\n",
        );
        let mut sink = Count::default();
        let mut summary = Summary::default();
        let mut problems = Vec::new();
        let lines = replay_source(
            "t.jsonl",
            text.as_bytes(),
            &mut sink,
            &mut summary,
            &mut |p| problems.push(p.to_string()),
        );
        assert_eq!(lines, 6);
        assert_eq!(sink.http, vec![2_000_000; 3]);
        assert_eq!(sink.tcp, 1);
        assert_eq!(
            summary.events, 5,
            "3 repeats + 1 tcp + 1 failed attempt; repeat 0 runs nothing"
        );
        assert_eq!(summary.lines_ok, 4);
        assert_eq!(summary.lines_skipped, 1);
        assert_eq!(summary.events_failed, 1);
        assert_eq!(summary.warnings, 1);
        assert_eq!(problems.len(), 3);
        assert!(
            problems[0].starts_with("t.jsonl:2: skipped: "),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].starts_with("t.jsonl:4: warning: field \"odd\""),
            "{}",
            problems[1]
        );
        assert_eq!(problems[2], "t.jsonl:5: event failed: plugin trapped");
        assert!(
            summary
                .to_string()
                .ends_with("; skipped by reason: expected value ×1"),
            "{summary}"
        );
    }

    #[test]
    fn timed_events_reloads_and_the_stop() {
        let text = concat!(
            "{\"kind\":\"reload\"}\n",
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"duration_ms\":10,\"grpc_messages\":[{\"request\":1,\"at_ms\":5}]}\n",
            "{\"kind\":\"http\",\"direction\":\"inbound\",\"duration_ms\":10,\"stop_after_ms\":5}\n",
            "{\"kind\":\"tcp\",\"direction\":\"inbound\"}\n",
        );
        let mut sink = Count::default();
        let mut summary = Summary::default();
        let mut problems = Vec::new();
        replay_source(
            "t.jsonl",
            text.as_bytes(),
            &mut sink,
            &mut summary,
            &mut |p| problems.push(p.to_string()),
        );
        // The counting sink cannot play timing: both timed events fail, the stop still ends the
        // replay, and the TCP line after it is skipped with its line number.
        assert_eq!(summary.reloads, 1);
        assert_eq!(summary.http_events, 2);
        assert_eq!(summary.events_failed, 2);
        assert_eq!(sink.tcp, 0);
        assert_eq!(summary.stopped_at.as_deref(), Some("t.jsonl:3"));
        assert_eq!(summary.lines_skipped, 1);
        assert!(problems[0].starts_with("t.jsonl:2: event failed: this sink cannot replay timing"));
        assert_eq!(
            problems[2],
            "t.jsonl:4: skipped: stopped: the replay stopped inside the open stream of t.jsonl:3 (stop_after_ms)"
        );
        assert!(summary
            .to_string()
            .contains("; 1 reloads; stopped inside the open stream of t.jsonl:3"));
    }

    #[test]
    fn reason_kinds() {
        assert_eq!(
            reason_kind("duration_ms: invalid type: string"),
            "duration_ms"
        );
        assert_eq!(
            reason_kind("response.flags: unknown response flag"),
            "response.flags"
        );
        assert_eq!(
            reason_kind("EOF while parsing an object"),
            "EOF while parsing"
        );
        assert_eq!(
            reason_kind("not UTF-8: invalid utf-8 sequence"),
            "not UTF-8"
        );
    }

    #[test]
    fn peak_memory_is_readable_on_linux() {
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }
}
