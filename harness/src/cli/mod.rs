//! The `harness` command line: `replay`, `check`, `render`, `gen-traffic`. Small modules: the
//! flags ([`args`]), reading the setup ([`setup`]), building the proxy ([`load`]), output
//! ([`output`]) and one module per subcommand.

pub mod args;
pub mod check;
pub mod load;
pub mod output;
pub mod render;
pub mod replay;
pub mod setup;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// The binary's entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Replay(a) => replay::run(a),
        Command::Check(a) => check::run(a),
        Command::Render(a) => render::run(a),
        Command::GenTraffic(a) => {
            let mut out = BufWriter::new(io::stdout().lock());
            let r =
                crate::replay::gen::write_http_events(&mut out, a.events).and_then(|_| out.flush());
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("harness gen-traffic: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
