//! The `stormproof` binary: parse arguments, run the library, map the outcome
//! to an exit code (see `stormproof::exit`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = stormproof::cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("stormproof: cannot start the async runtime: {err}");
            return ExitCode::from(stormproof::exit::ERROR as u8);
        }
    };
    let code = match runtime.block_on(stormproof::cli::run(cli)) {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("stormproof: {err:#}");
            stormproof::exit::ERROR
        }
    };
    // Services and the broker may leave blocking threads behind (librdkafka);
    // do not wait for them at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code as u8)
}
