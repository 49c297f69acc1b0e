//! `tms`: the command-line face of tms. Parses arguments, calls the library crates, reports.
//!
//! Only this crate knows about clap, progress bars and exit codes. Errors are typed in the libraries
//! and printed once here, with their chain. Exit codes: 0 success, 1 failure while running,
//! 2 bad input (arguments, configs, an existing output directory) — and with code 2 nothing is
//! written to disk.

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
