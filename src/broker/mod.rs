//! The embedded broker: a Kafka-API broker (nisshi 0.8, the project once
//! called tansu) with durable SQLite storage, so a system runs with no
//! installed Kafka, and with broker faults it can be told to inject.
//!
//! The local platform runs it as its own child process (`stormproof broker`)
//! so that stopping the broker is a real fault. Messages and committed
//! offsets live in `DATA/broker.db` and survive a restart. Faults
//! ([`BrokerFault`]) are set and cleared at runtime through the process's
//! fault control endpoint ([`FaultClient`]).

mod advertise;
mod answer;
mod book;
mod control;
mod fault;
mod inject;
mod server;

pub use book::{Decision, FaultBook, Request};
pub use control::{FaultClient, FaultError};
pub use fault::{ActiveFault, Api, BrokerFault, Fault, KafkaError, Target};
pub use server::{BrokerConfig, FaultEndpoint, run};
