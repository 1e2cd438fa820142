//! Contracts: consumer-driven contracts with Pact. A *pact* is the file a
//! consumer's tests write: the requests it makes of a provider and the events
//! it relies on, with the parts that matter marked by matching rules.
//! *Verifying* a provider replays every pact naming it against the real
//! provider and fails on the first difference a consumer would notice.
//!
//! Who talks to whom: [`verify`] drives the Pact verifier (the `pact_verifier`
//! crate) against a provider — one it starts itself ([`provider`]) or one at
//! a URL. For message pacts the verifier calls stormproof's message endpoint
//! ([`messages`]), which makes the provider publish the event through its own
//! API (the [`triggers`] kept beside the pacts) and captures it from Kafka.
//! A provider's system supplies its triggers and its provider [`states`]
//! as data. [`broker`] speaks the Pact Broker's HTTP API. [`report`] turns
//! a verification into text, JSON and JUnit; the CLI prints. [`checkpoint`]
//! runs a contract checkpoint's cases for `stormproof check`.

pub mod broker;
pub mod checkpoint;
pub mod messages;
pub mod pacts;
pub mod provider;
pub mod report;
pub mod states;
pub mod triggers;
pub mod verify;

pub use report::{InteractionReport, MismatchReport, Verification};
pub use verify::{PactSource, ProviderSide, VerifyPlan, verify};
