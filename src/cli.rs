//! Command-line arguments and dispatch. The engines never see clap types:
//! each subcommand turns its arguments into the library's own plans here.

use clap::{Parser, Subcommand};

use crate::exit::Outcome;

/// stormproof: chaos, load and contract testing for event-driven microservices.
#[derive(Debug, Parser)]
#[command(name = "stormproof", version, about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a service as siege does (same flags), with real measurement and CI gates.
    Siege(crate::load::cli::SiegeArgs),
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Siege(args) => crate::load::cli::run_siege(args).await,
    }
}
