//! The systems stormproof knows and the service code they run: the
//! [`catalog`] of systems (built-in or a folder), their [`definition`], how a
//! service of the user's own is started ([`command`]), the
//! [`kit`] services are built from, the reference systems' own handlers
//! (the [`shop`], the [`taxi`], the [`library`], the [`telecom`]) and [`serve`], what `stormproof serve SYSTEM.SERVICE` runs
//! — one replica, as the local platform starts it and a container runs it.

pub mod catalog;
pub mod command;
pub mod definition;
pub mod kit;
pub mod library;
pub mod log_level;
pub mod serve;
pub mod shop;
pub mod taxi;
pub mod telecom;

pub use catalog::{Part, System, SystemFile, builtin_names};
pub use serve::{GatewayOptions, serve, split_name};
