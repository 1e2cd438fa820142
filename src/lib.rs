//! stormproof: chaos, load and contract testing for event-driven microservices.
//!
//! The binary is a thin shell over this library (see `main.rs`). The parts:
//! - [`systems`]: the catalog of systems (built-in, or a folder), their
//!   definitions, the reference services (the shop) and the kit they share;
//! - [`broker`]: the embedded Kafka-API broker (nisshi, SQLite storage) and its faults;
//! - [`contract`]: consumer-driven contracts with Pact — verify, broker;
//! - [`platform`]: where services run — the local platform and its control API;
//! - [`load`]: the siege-compatible load engine; [`report`]: its reports;
//! - [`chaos`]: experiments with verdicts and guaranteed rollback;
//! - [`check`]: the course's checkpoints scored from experiments;
//! - [`cli`]: arguments and dispatch; the only part that prints for users;
//! - [`capture`], [`clock`], [`process`], [`proxy`]: plumbing several parts share.
#![warn(missing_docs)]

pub mod bearer;
pub mod broker;
pub mod capture;
pub mod chaos;
pub mod check;
pub mod cli;
pub mod clock;
pub mod contract;
pub mod exit;
pub mod load;
pub mod platform;
pub mod process;
pub mod proxy;
pub mod report;
pub mod systems;

/// Installs the process-wide TLS crypto provider. A dependency of the
/// embedded broker turns on reqwest's rustls without a provider, so every
/// HTTP client — even a plain-HTTP one — needs this first. aws-lc is the
/// provider the broker already links.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A builder for an HTTP client, with the crypto provider installed first.
/// Every reqwest client in stormproof starts here.
pub fn http_client() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}
