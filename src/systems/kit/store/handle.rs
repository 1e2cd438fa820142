//! The store as services see it: one API over both backends. A service
//! writes its SQL once, in SQLite's dialect with `?` placeholders; on
//! PostgreSQL the store translates it ([`super::dialect`]).

use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libsql::params::{IntoParams, Params};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit};

use super::dialect::Dialect;
use super::{postgres, sqlite};

/// Set to a `postgres://` URL, services keep their data in PostgreSQL
/// (each in a schema of its own) instead of a SQLite file.
pub const DATABASE_URL: &str = "STORMPROOF_DATABASE_URL";

/// The kit's own tables: the outbox, the rows it parked, and the record of
/// applied events. (SQLite's dialect, translated for PostgreSQL.)
pub(super) const KIT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    lease_owner TEXT,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox(seq) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS outbox_dead_letters (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload_bytes INTEGER NOT NULL,
    error TEXT NOT NULL,
    parked_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_dead_letters_key ON outbox_dead_letters(topic, key);
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    processed_at TEXT NOT NULL
);
";

/// How long a request waits for the write lock (another replica holds it)
/// before it gives up with [`StoreBusy`].
const WRITE_WAIT: Duration = Duration::from_secs(5);

/// The store could not take the write lock (or a connection) in time.
/// Callers answer 503 or retry later.
#[derive(Debug, thiserror::Error)]
#[error("the store is locked by another writer (waited {0:?})")]
pub struct StoreBusy(pub Duration);

/// A service's database.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

enum Backend {
    Sqlite(sqlite::Shared),
    Postgres(postgres::Shared),
}

impl Store {
    /// Opens (or creates) the SQLite file `path` and applies the kit's and
    /// the service's schema.
    pub async fn open(path: &Path, schema: &str) -> anyhow::Result<Store> {
        let shared = sqlite::Shared::open(path, schema, WRITE_WAIT).await?;
        Ok(Store { backend: Arc::new(Backend::Sqlite(shared)) })
    }

    /// The store of service `service`: in PostgreSQL schema `service` when
    /// [`DATABASE_URL`] is set, else in the SQLite file `path`.
    pub async fn open_service(service: &str, path: &Path, schema: &str) -> anyhow::Result<Store> {
        match std::env::var(DATABASE_URL).ok().filter(|url| !url.is_empty()) {
            Some(url) => Store::open_postgres(&url, service, schema).await,
            None => Store::open(path, schema).await,
        }
    }

    /// Opens schema `service` of the PostgreSQL database at `url`.
    pub async fn open_postgres(url: &str, service: &str, schema: &str) -> anyhow::Result<Store> {
        let shared = postgres::Shared::open(url, service, schema).await?;
        Ok(Store { backend: Arc::new(Backend::Postgres(shared)) })
    }

    /// The dialect behind this store.
    pub fn dialect(&self) -> Dialect {
        match &*self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A reader connection from the pool (returned to it when dropped).
    pub async fn read(&self) -> anyhow::Result<Reader> {
        match &*self.backend {
            Backend::Sqlite(db) => db.read().await,
            Backend::Postgres(db) => db.read().await,
        }
    }

    /// Begins a write transaction, waiting up to 5 s for the write lock.
    pub async fn begin(&self) -> anyhow::Result<Tx> {
        self.begin_within(WRITE_WAIT).await
    }

    /// Begins a write transaction, waiting up to `wait` for the write lock
    /// (SQLite) or a connection (PostgreSQL).
    pub async fn begin_within(&self, wait: Duration) -> anyhow::Result<Tx> {
        match &*self.backend {
            Backend::Sqlite(db) => db.begin_within(wait).await,
            Backend::Postgres(db) => db.begin_within(wait).await,
        }
    }
}

/// A connection of either backend, with its cached prepared statements.
pub enum Conn {
    /// A SQLite connection.
    Sqlite(sqlite::Conn),
    /// A PostgreSQL connection.
    Postgres(postgres::Conn),
}

fn params(params: impl IntoParams) -> anyhow::Result<Params> {
    Ok(params.into_params()?)
}

impl Conn {
    /// Runs a statement that returns no rows; the number of rows changed.
    pub async fn execute(&self, sql: &str, values: impl IntoParams) -> anyhow::Result<u64> {
        match self {
            Conn::Sqlite(conn) => conn.execute(sql, params(values)?).await,
            Conn::Postgres(conn) => conn.execute(sql, params(values)?).await,
        }
    }

    /// Every row of a query, each deserialized by column name (alias
    /// columns to the struct's field names, in double quotes).
    pub async fn all<T: DeserializeOwned>(&self, sql: &str, values: impl IntoParams) -> anyhow::Result<Vec<T>> {
        self.rows(sql, params(values)?, usize::MAX).await
    }

    /// The first row of a query, if any, deserialized like [`Conn::all`].
    pub async fn first<T: DeserializeOwned>(&self, sql: &str, values: impl IntoParams) -> anyhow::Result<Option<T>> {
        Ok(self.rows(sql, params(values)?, 1).await?.pop())
    }

    async fn rows<T: DeserializeOwned>(&self, sql: &str, params: Params, limit: usize) -> anyhow::Result<Vec<T>> {
        match self {
            Conn::Sqlite(conn) => conn.rows(sql, params, limit).await,
            Conn::Postgres(conn) => conn.rows(sql, params, limit).await,
        }
    }

    /// The single value of a one-column query (`SELECT COUNT(*) …`).
    pub async fn value<T: DeserializeOwned>(&self, sql: &str, values: impl IntoParams) -> anyhow::Result<Option<T>> {
        match self {
            Conn::Sqlite(conn) => conn.value(sql, params(values)?).await,
            Conn::Postgres(conn) => conn.value(sql, params(values)?).await,
        }
    }

    /// The id of the row the last INSERT on this connection created.
    pub fn last_insert_rowid(&self) -> i64 {
        match self {
            Conn::Sqlite(conn) => conn.last_insert_rowid(),
            Conn::Postgres(conn) => conn.last_insert_id(),
        }
    }

    /// After rows were inserted with explicit ids (a seed), moves the id
    /// source of `table.column` past them. SQLite does this itself.
    pub async fn advance_ids(&self, table: &'static str, column: &'static str) -> anyhow::Result<()> {
        match self {
            Conn::Sqlite(_) => Ok(()),
            Conn::Postgres(conn) => conn.advance_ids(table, column).await,
        }
    }

    /// The SQLite connection itself, for SQL the helpers do not cover.
    pub fn connection(&self) -> Option<&libsql::Connection> {
        match self {
            Conn::Sqlite(conn) => Some(conn.connection()),
            Conn::Postgres(_) => None,
        }
    }
}

/// Connections kept open between uses.
pub struct Idle {
    conns: Mutex<Vec<Conn>>,
    keep: usize,
}

impl Idle {
    pub fn new(keep: usize) -> Idle {
        Idle { conns: Mutex::default(), keep }
    }

    pub fn take(&self) -> Option<Conn> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, conn: Conn) {
        if let Conn::Postgres(pg) = &conn
            && pg.is_closed()
        {
            return;
        }
        let mut idle = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.keep {
            idle.push(conn);
        }
    }
}

/// A pooled connection, returned to its pool when dropped.
pub struct Reader {
    conn: Option<Conn>,
    idle: Arc<Idle>,
    // Released after the connection is back in the pool.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Reader {
    pub(super) fn new(conn: Conn, idle: Arc<Idle>, permit: Option<OwnedSemaphorePermit>) -> Reader {
        Reader { conn: Some(conn), idle, _permit: permit }
    }
}

impl Deref for Reader {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("reader connection present until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.idle.give_back(conn);
        }
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    kind: TxKind,
}

enum TxKind {
    // `tx` is declared before `conn`: the transaction rolls back before the
    // writer connection is handed to the next task.
    Sqlite { tx: Option<libsql::Transaction>, conn: OwnedMutexGuard<Conn> },
    // An open transaction dropped marks its connection, and the next user
    // rolls it back first (Drop cannot wait for the server).
    Postgres { open: bool, conn: Reader },
}

impl Tx {
    pub(super) fn sqlite(tx: libsql::Transaction, conn: OwnedMutexGuard<Conn>) -> Tx {
        Tx { kind: TxKind::Sqlite { tx: Some(tx), conn } }
    }

    pub(super) fn postgres(conn: Reader) -> Tx {
        Tx { kind: TxKind::Postgres { open: true, conn } }
    }

    /// Commits the transaction.
    pub async fn commit(mut self) -> anyhow::Result<()> {
        self.finish(End::Commit).await
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> anyhow::Result<()> {
        self.finish(End::Rollback).await
    }

    async fn finish(&mut self, end: End) -> anyhow::Result<()> {
        match &mut self.kind {
            TxKind::Sqlite { tx, .. } => match (tx.take(), end) {
                (Some(tx), End::Commit) => Ok(tx.commit().await?),
                (Some(tx), End::Rollback) => Ok(tx.rollback().await?),
                (None, _) => Ok(()),
            },
            TxKind::Postgres { open, conn } => {
                let Conn::Postgres(pg) = &**conn else { unreachable!("a PostgreSQL transaction on a PostgreSQL connection") };
                // Whatever the outcome, the server has ended the transaction
                // (a failed COMMIT rolls back).
                *open = false;
                pg.batch(match end {
                    End::Commit => "COMMIT",
                    End::Rollback => "ROLLBACK",
                })
                .await
            }
        }
    }
}

/// How a transaction ends.
#[derive(Clone, Copy)]
enum End {
    Commit,
    Rollback,
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let TxKind::Postgres { open: true, conn } = &self.kind
            && let Conn::Postgres(pg) = &**conn
        {
            pg.mark_dirty();
        }
    }
}

impl Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match &self.kind {
            TxKind::Sqlite { conn, .. } => conn,
            TxKind::Postgres { conn, .. } => conn,
        }
    }
}

/// Whether `err` (anywhere in its chain) is the store failing rather than
/// the request or event: locked, full, an I/O error, a lost connection, a
/// serialization failure or deadlock. Such errors are worth retrying later;
/// a constraint violation or bad SQL is not.
pub fn is_store_failure(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<StoreBusy>() || sqlite::is_failure(cause) || postgres::is_failure(cause))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// What both backends must do with a table `t (id INTEGER PRIMARY KEY, …)`.
    pub async fn committed_rows_are_seen_and_dropped_ones_are_not(store: &Store) {
        let count = || async { store.read().await.unwrap().value::<i64>("SELECT COUNT(*) FROM t", ()).await.unwrap().unwrap() };
        let tx = store.begin().await.unwrap();
        tx.execute("INSERT INTO t (id) VALUES (1)", ()).await.unwrap();
        assert_eq!(count().await, 0, "uncommitted rows are not seen");
        tx.commit().await.unwrap();
        assert_eq!(count().await, 1);
        let tx = store.begin().await.unwrap();
        tx.execute("INSERT INTO t (id) VALUES (2)", ()).await.unwrap();
        drop(tx);
        assert_eq!(count().await, 1, "a dropped transaction rolls back");
        // The pooled reader's cached statement does not pin an old snapshot.
        store.begin().await.unwrap().execute("INSERT INTO t (id) VALUES (3)", ()).await.unwrap();
        let tx = store.begin().await.unwrap();
        tx.execute("INSERT INTO t (id) VALUES (4)", ()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count().await, 2);
        // Ids from the database follow explicit ones once advanced.
        let tx = store.begin().await.unwrap();
        tx.advance_ids("t", "id").await.unwrap();
        tx.execute("INSERT INTO t (v) VALUES (NULL)", ()).await.unwrap();
        assert_eq!(tx.last_insert_rowid(), 5);
        tx.commit().await.unwrap();
    }
}
