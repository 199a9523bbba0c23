//! `harness`: see `harness --help` and [`harness::cli`].

fn main() -> std::process::ExitCode {
    harness::cli::main()
}
