//! The store: a service's own data, in a SQLite file or (with
//! `STORMPROOF_DATABASE_URL`) a PostgreSQL schema.

mod dialect;
mod handle;
mod postgres;
mod sqlite;

pub use dialect::Dialect;
pub use handle::{Conn, DATABASE_URL, Reader, Store, StoreBusy, Tx, is_store_failure};
pub use sqlite::is_busy;
