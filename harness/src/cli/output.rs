//! Stdout (the Prometheus text) and stderr (problems, summary, progress).

use std::io::{self, IsTerminal, Write};

use stats_sink::TagExtractor;

use super::setup::Setup;
use crate::proxy::Proxy;

/// `/stats/prometheus` for the replayed proxy: Istio's bootstrap tag extraction for the proxy
/// minor, plus one rule per extra stat tag.
pub fn prometheus_text(proxy: &Proxy, setup: &Setup) -> String {
    let tags = TagExtractor::istio(setup.version.minor, &setup.extra_stat_tags);
    stats_sink::prometheus::render(proxy.stats(), &tags)
}

pub fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Problems printed per source before the rest are only counted (keeps a broken 1 GB file from
/// flooding the terminal).
pub const MAX_PROBLEMS_SHOWN: usize = 100;

/// A byte-progress bar on stderr, only when stderr is a terminal and the input is large.
pub fn progress_bar(len: u64) -> Option<indicatif::ProgressBar> {
    const LARGE: u64 = 8 << 20;
    if len < LARGE || !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
