//! The store: one SQLite file per service (libsql, the same SQLite build the
//! embedded broker uses). Replicas of a service share the file; WAL mode and
//! a busy timeout let their writers take turns.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use libsql::{Connection, Database, Transaction, TransactionBehavior};

/// The kit's own tables: the outbox and the record of applied events.
const KIT_SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    processed_at TEXT NOT NULL
);
";

/// A service's SQLite database.
#[derive(Clone)]
pub struct Store {
    db: std::sync::Arc<Database>,
}

impl Store {
    /// Opens (or creates) `path` and applies the kit's and the service's schema.
    pub async fn open(path: &Path, schema: &str) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        }
        let db = libsql::Builder::new_local(path)
            .build()
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let store = Store { db: std::sync::Arc::new(db) };
        let conn = store.connect().await?;
        let mut rows = conn.query("PRAGMA journal_mode = WAL", ()).await?;
        while rows.next().await?.is_some() {}
        conn.execute_batch(KIT_SCHEMA).await?;
        conn.execute_batch(schema).await?;
        Ok(store)
    }

    /// A new connection with a busy timeout (replicas share the file).
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let conn = self.db.connect()?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // Per connection, not per file. NORMAL in WAL mode is durable against
        // a process crash (what chaos does) without an fsync per commit.
        conn.execute("PRAGMA synchronous = NORMAL", ()).await?;
        Ok(conn)
    }

    /// Begins a write transaction. IMMEDIATE takes the write lock up front,
    /// so two replicas never deadlock upgrading a read lock.
    pub async fn begin(&self) -> anyhow::Result<Transaction> {
        let conn = self.connect().await?;
        Self::begin_on(&conn).await
    }

    /// Begins a write transaction on `conn` (a consumer keeps one connection
    /// for all its events instead of opening one per event).
    pub async fn begin_on(conn: &Connection) -> anyhow::Result<Transaction> {
        Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate).await?)
    }
}

/// Every row of `rows`, mapped by `map`.
pub async fn all<T>(mut rows: libsql::Rows, map: impl Fn(&libsql::Row) -> anyhow::Result<T>) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(map(&row)?);
    }
    Ok(out)
}

/// The first row of `rows`, mapped by `map`.
pub async fn first<T>(mut rows: libsql::Rows, map: impl Fn(&libsql::Row) -> anyhow::Result<T>) -> anyhow::Result<Option<T>> {
    match rows.next().await? {
        Some(row) => Ok(Some(map(&row)?)),
        None => Ok(None),
    }
}
