//! `cargo ebbrt`: the host-side tool of EbbRT.
//!
//! - `cargo ebbrt new <dir>` writes a ready application in a new directory.
//! - `cargo ebbrt run [app]` builds an application for the native target
//!   and boots it under QEMU (or, with `--hosted`, runs it as a Linux
//!   process), and exits with the application's status.
//! - `cargo ebbrt test` runs the host tests of the workspace and then every
//!   in-QEMU test kernel, and ends with `N passed, N failed`.
//! - `cargo ebbrt docs` writes `docs/components.md`, the component catalog
//!   (`--check`: fails when it is stale): the framework's, or in an
//!   application's workspace the application's.
//!
//! They work in the framework's workspace and in any application's. It is
//! installed with `cargo install --path cargo-ebbrt` (cargo then runs it as
//! the external subcommand `cargo ebbrt`); inside the framework's checkout
//! the alias in `.cargo/config.toml` builds and runs it. It owns
//! the command line, the QEMU command construction, the exit-status mapping
//! and the test-kernel protocol reader; it must not know anything about what
//! runs inside the guest beyond CONTRACTS.md. docs/tooling.md is its manual.

mod accel;
mod app_docs;
mod cargo;
mod cli;
mod docs_cmd;
#[cfg(test)]
mod e2e;
mod exit;
mod fuzz;
mod net;
mod netcheck;
mod new_cmd;
mod process;
mod protocol;
mod qemu;
mod run_cmd;
mod session;
mod setup;
mod symbolize;
mod test_cmd;

use std::process::ExitCode;

/// Why the tool could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line (or an example/test name in it) is wrong: status 2.
    #[error("{0}")]
    Usage(String),
    /// Something the tool needed failed (a build, QEMU, rustup, ...): status 1.
    #[error("{0}")]
    Tool(String),
}

/// A message from the tool itself, on stderr (stdout is the application's).
pub fn note(msg: &str) {
    eprintln!("ebbrt: {msg}");
}

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(args) = args else {
        eprintln!("error: command-line arguments must be valid UTF-8");
        return code(exit::EXIT_USAGE);
    };
    let result = match cli::parse(args) {
        Ok(cli::Command::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Run(a)) => run_cmd::run(a),
        Ok(cli::Command::Test(a)) => test_cmd::test(a),
        Ok(cli::Command::Docs(a)) => docs_cmd::docs(a),
        Ok(cli::Command::New(a)) => new_cmd::new(a),
        Err(e) => {
            eprintln!("{e}");
            return code(exit::EXIT_USAGE);
        }
    };
    match result {
        Ok(status) => code(status),
        Err(Error::Usage(msg)) => {
            eprintln!("error: {msg}");
            code(exit::EXIT_USAGE)
        }
        Err(Error::Tool(msg)) => {
            eprintln!("error: {msg}");
            code(exit::EXIT_TOOL)
        }
    }
}

fn code(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status).unwrap_or(exit::EXIT_TOOL as u8))
}
