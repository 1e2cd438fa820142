//! stormproof: chaos, load and contract testing for event-driven microservices.
//!
//! The binary is a thin shell over this library (see `main.rs`).
#![warn(missing_docs)]

pub mod cli;
pub mod exit;
pub mod load;
pub mod report;
