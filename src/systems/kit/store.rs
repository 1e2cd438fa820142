//! The store: one SQLite file per service (libsql, the same SQLite build the
//! embedded broker uses). Replicas of a service share the file; WAL mode
//! lets readers run beside a writer, and writers of different replicas take
//! turns on SQLite's write lock.
//!
//! Connections are opened once and kept, each with its PRAGMAs set and its
//! prepared statements cached. A process has one writer connection, taken
//! by one transaction at a time (an async lock, so tasks waiting to write
//! never block a runtime thread), and a pool of reader connections.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use libsql::params::IntoParams;
use serde::de::IntoDeserializer;
use libsql::{Connection, Database, Statement, Transaction, TransactionBehavior};
use serde::de::DeserializeOwned;
use tokio::sync::OwnedMutexGuard;

/// The kit's own tables: the outbox, the rows it parked, and the record of
/// applied events.
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
/// A reader waits this long on a lock (WAL readers rarely wait at all).
const READ_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle reader connections kept open.
const IDLE_READERS: usize = 16;

/// The store could not take the write lock in time: another replica (or
/// another program) holds it. Callers answer 503 or retry later.
#[derive(Debug, thiserror::Error)]
#[error("the store is locked by another writer (waited {0:?})")]
pub struct StoreBusy(pub Duration);

/// A service's SQLite database.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    db: Database,
    writer: Arc<tokio::sync::Mutex<Conn>>,
    idle: Mutex<Vec<Conn>>,
}

impl Store {
    /// Opens (or creates) `path` and applies the kit's and the service's schema.
    pub async fn open(path: &Path, schema: &str) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
        }
        let db = libsql::Builder::new_local(path).build().await.with_context(|| format!("cannot open {}", path.display()))?;
        // Replicas starting together contend for the file while they set it
        // up; afterwards the writer waits without blocking (busy timeout 0).
        let writer = Conn::open(&db, Duration::from_secs(10)).await?;
        let mut rows = writer.conn.query("PRAGMA journal_mode = WAL", ()).await?;
        while rows.next().await?.is_some() {}
        drop(rows);
        // Another replica may be creating the same tables right now.
        let schema_tx = writer.begin_within(WRITE_WAIT).await?;
        writer.conn.execute_batch(KIT_SCHEMA).await?;
        writer.conn.execute_batch(schema).await?;
        schema_tx.commit().await?;
        writer.conn.busy_timeout(Duration::ZERO)?;
        let shared = Shared { db, writer: Arc::new(tokio::sync::Mutex::new(writer)), idle: Mutex::new(Vec::new()) };
        Ok(Store { shared: Arc::new(shared) })
    }

    /// A reader connection from the pool (returned to it when dropped).
    pub async fn read(&self) -> anyhow::Result<Reader> {
        let idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => Conn::open(&self.shared.db, READ_BUSY_TIMEOUT).await?,
        };
        Ok(Reader { conn: Some(conn), store: self.shared.clone() })
    }

    /// Begins a write transaction, waiting up to 5 s for the write lock.
    pub async fn begin(&self) -> anyhow::Result<Tx> {
        self.begin_within(WRITE_WAIT).await
    }

    /// Begins a write transaction, waiting up to `wait` for the write lock.
    /// IMMEDIATE takes the lock up front, so two replicas never deadlock
    /// upgrading a read lock.
    pub async fn begin_within(&self, wait: Duration) -> anyhow::Result<Tx> {
        let started = Instant::now();
        let guard = tokio::time::timeout(wait, self.shared.writer.clone().lock_owned())
            .await
            .map_err(|_| StoreBusy(started.elapsed()))?;
        let tx = guard.begin_within(wait.saturating_sub(started.elapsed())).await?;
        Ok(Tx { tx: Some(tx), conn: guard })
    }
}

/// A connection with its cached prepared statements.
pub struct Conn {
    conn: Connection,
    statements: Mutex<HashMap<String, Arc<Statement>>>,
}

impl Conn {
    async fn open(db: &Database, busy_timeout: Duration) -> anyhow::Result<Conn> {
        let conn = db.connect()?;
        conn.busy_timeout(busy_timeout)?;
        // Per connection, not per file. NORMAL in WAL mode is durable against
        // a process crash (what chaos does) without an fsync per commit.
        conn.execute("PRAGMA synchronous = NORMAL", ()).await?;
        Ok(Conn { conn, statements: Mutex::default() })
    }

    /// BEGIN IMMEDIATE, retried without blocking the thread while another
    /// process holds the write lock (this connection's busy timeout is 0).
    async fn begin_within(&self, wait: Duration) -> anyhow::Result<Transaction> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match self.conn.transaction_with_behavior(TransactionBehavior::Immediate).await {
                Ok(tx) => return Ok(tx),
                Err(err) if is_busy(&err) && started.elapsed() < wait => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(err) if is_busy(&err) => return Err(StoreBusy(started.elapsed()).into()),
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The prepared statement for `sql`, prepared on first use.
    async fn statement(&self, sql: &str) -> anyhow::Result<Arc<Statement>> {
        if let Some(statement) = self.statements.lock().unwrap_or_else(|e| e.into_inner()).get(sql) {
            statement.reset();
            return Ok(statement.clone());
        }
        let statement = Arc::new(self.conn.prepare(sql).await.with_context(|| format!("cannot prepare `{sql}`"))?);
        self.statements.lock().unwrap_or_else(|e| e.into_inner()).insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Runs a statement that returns no rows; the number of rows changed.
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> anyhow::Result<u64> {
        let statement = self.statement(sql).await?;
        let changed = statement.execute(params).await;
        statement.reset();
        Ok(changed? as u64)
    }

    /// Every row of a query, each deserialized by column name
    /// (`libsql::de::from_row`; alias columns to the struct's field names).
    pub async fn all<T: DeserializeOwned>(&self, sql: &str, params: impl IntoParams) -> anyhow::Result<Vec<T>> {
        let statement = self.statement(sql).await?;
        let result = collect(&statement, params, usize::MAX).await;
        // A stepped statement that is not reset keeps its read snapshot open.
        statement.reset();
        result
    }

    /// The first row of a query, if any, deserialized like [`Conn::all`].
    pub async fn first<T: DeserializeOwned>(&self, sql: &str, params: impl IntoParams) -> anyhow::Result<Option<T>> {
        let statement = self.statement(sql).await?;
        let result = collect(&statement, params, 1).await;
        statement.reset();
        Ok(result?.pop())
    }

    /// The single value of a one-column query (`SELECT COUNT(*) …`).
    pub async fn value<T: DeserializeOwned>(&self, sql: &str, params: impl IntoParams) -> anyhow::Result<Option<T>> {
        let statement = self.statement(sql).await?;
        let result = async {
            let mut rows = statement.query(params).await?;
            match rows.next().await? {
                Some(row) => {
                    let value: libsql::Value = row.get_value(0)?;
                    let de = IntoDeserializer::<serde::de::value::Error>::into_deserializer(value);
                    Ok(Some(T::deserialize(de).map_err(|err| anyhow::anyhow!("cannot read a value: {err}"))?))
                }
                None => Ok(None),
            }
        }
        .await;
        statement.reset();
        result
    }

    /// The row id of the last INSERT on this connection.
    pub fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    /// The connection itself, for SQL the helpers do not cover.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

async fn collect<T: DeserializeOwned>(statement: &Statement, params: impl IntoParams, limit: usize) -> anyhow::Result<Vec<T>> {
    let mut rows = statement.query(params).await?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(row) = rows.next().await? else { break };
        out.push(libsql::de::from_row::<T>(&row).map_err(|err| anyhow::anyhow!("cannot read a row: {err}"))?);
    }
    Ok(out)
}

/// A pooled reader connection.
pub struct Reader {
    conn: Option<Conn>,
    store: Arc<Shared>,
}

impl Deref for Reader {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("reader connection present until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut idle = self.store.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// A write transaction on the process's writer connection. Dropped without
/// [`Tx::commit`], it rolls back.
pub struct Tx {
    // Declared before `conn`: the transaction rolls back before the writer
    // connection is handed to the next task.
    tx: Option<Transaction>,
    conn: OwnedMutexGuard<Conn>,
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(mut self) -> anyhow::Result<()> {
        match self.tx.take() {
            Some(tx) => Ok(tx.commit().await?),
            None => Ok(()),
        }
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> anyhow::Result<()> {
        match self.tx.take() {
            Some(tx) => Ok(tx.rollback().await?),
            None => Ok(()),
        }
    }
}

impl Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

/// Whether `err` is SQLite's "busy" or "locked": another connection holds
/// the lock (a transient condition, unlike a broken store).
pub fn is_busy(err: &libsql::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    matches!(err, libsql::Error::SqliteFailure(code, _) if matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

/// Whether `err` (anywhere in its chain) is the store failing rather than
/// the request or event: locked, full, an I/O error. Such errors are worth
/// retrying later; a constraint violation or bad SQL is not.
pub fn is_store_failure(err: &anyhow::Error) -> bool {
    const RETRYABLE: &[i32] = &[5, 6, 7, 10, 13, 14, 15]; // BUSY LOCKED NOMEM IOERR FULL CANTOPEN PROTOCOL
    err.chain().any(|cause| {
        cause.is::<StoreBusy>()
            || matches!(cause.downcast_ref::<libsql::Error>(), Some(libsql::Error::SqliteFailure(code, _)) if RETRYABLE.contains(&(code & 0xff)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB);";

    #[tokio::test]
    async fn a_locked_or_full_store_is_a_store_failure_and_a_constraint_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let (a, b) = (Store::open(&path, SCHEMA).await.unwrap(), Store::open(&path, SCHEMA).await.unwrap());

        // Another writer (another replica, or another program) holds the lock.
        let held = a.begin().await.unwrap();
        let started = Instant::now();
        let busy = b.begin_within(Duration::from_millis(200)).await.err().expect("the lock is taken");
        assert!(busy.is::<StoreBusy>() && is_store_failure(&busy), "{busy:#}");
        assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
        drop(held);
        b.begin_within(Duration::from_millis(200)).await.expect("free once rolled back").commit().await.unwrap();

        // The disk is full (the file may not grow past its page limit).
        let tx = a.begin().await.unwrap();
        let mut rows = tx.connection().query("PRAGMA max_page_count = 8", ()).await.unwrap();
        while rows.next().await.unwrap().is_some() {}
        drop(rows);
        let full = tx.execute("INSERT INTO t (id, v) VALUES (1, zeroblob(1000000))", ()).await.expect_err("the store is full");
        assert!(is_store_failure(&full), "{full:#}");
        drop(tx);

        let tx = a.begin().await.unwrap();
        tx.execute("INSERT INTO t (id) VALUES (2)", ()).await.unwrap();
        let constraint = tx.execute("INSERT INTO t (id) VALUES (2)", ()).await.expect_err("a duplicate key");
        assert!(!is_store_failure(&constraint), "a constraint violation is the request's fault: {constraint:#}");
    }

    #[tokio::test]
    async fn readers_see_what_the_writer_committed_and_a_dropped_transaction_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), SCHEMA).await.unwrap();
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
    }
}
