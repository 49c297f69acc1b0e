//! `tms`: the command-line face of tms. Parses arguments, calls the library crates, reports.
//!
//! Only this crate knows about clap, progress bars and exit codes. Errors are typed in the libraries
//! and printed once here, with their chain; the error says its exit code. Exit codes: 0 success,
//! 1 failure while running (or a failed claim in `reproduce`), 2 bad input (arguments, configs,
//! sweep files, an existing output directory) — and with code 2 nothing is written to disk —,
//! 130 a sweep stopped by a signal after checkpointing.

#![forbid(unsafe_code)]

mod commands;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <commands::Cli as clap::Parser>::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
