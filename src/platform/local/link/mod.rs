//! Link proxies: the userspace proxy the local platform puts on every link
//! it wires (gateway → service, service → service, service → broker), so a
//! network fault ([`crate::platform::network`]) can be set on a link without
//! root or a kernel module. With no fault set a proxy only copies bytes.
//!
//! [`LinkTable`] owns the wired links and the faults set on them; each
//! proxy's accept loop ([`proxy`]) hands a connection to its two pumps
//! ([`pump`]), which apply what the faults picked for it say ([`effects`]).
//! A hop with both ends inside `up` — the gateway to a proxy, a proxy to a
//! stable address — is made in memory ([`memory`]), not over loopback.

mod effects;
mod memory;
mod proxy;
mod pump;
mod table;

pub use memory::InMemory;
pub use table::{LinkTable, LinkedUpstreams};
