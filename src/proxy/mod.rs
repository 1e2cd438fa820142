//! Request forwarding: the gateway and the local platform's service
//! addresses both pass a request on to one ready endpoint of a service
//! ([`Forwarder`]), over TCP or, to a listener in the same process, in
//! memory ([`InProcess`]).

mod connector;
mod forwarder;

pub use connector::InProcess;
pub use forwarder::{Forwarder, MAX_BODY, Upstreams};
