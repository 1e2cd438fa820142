//! The SQLite backend: one file per service (libsql, the same SQLite build
//! the embedded broker uses). Replicas of a service share the file; WAL mode
//! lets readers run beside a writer, and writers of different replicas take
//! turns on SQLite's write lock.
//!
//! Connections are opened once and kept, each with its PRAGMAs set and its
//! prepared statements cached. A process has one writer connection, taken
//! by one transaction at a time (an async lock, so tasks waiting to write
//! never block a runtime thread), and a pool of reader connections.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use libsql::params::Params;
use libsql::{Connection, Database, Statement, Transaction, TransactionBehavior};
use serde::de::{DeserializeOwned, IntoDeserializer};

use super::handle::{Conn as AnyConn, Idle, KIT_SCHEMA, Reader, StoreBusy, Tx};

/// A reader waits this long on a lock (WAL readers rarely wait at all).
const READ_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// A service's SQLite database.
pub struct Shared {
    db: Database,
    writer: Arc<tokio::sync::Mutex<AnyConn>>,
    idle: Arc<Idle>,
}

impl Shared {
    /// Opens (or creates) `path` and applies the kit's and the service's schema.
    pub async fn open(path: &Path, schema: &str, write_wait: Duration) -> anyhow::Result<Shared> {
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
        let schema_tx = writer.begin_within(write_wait).await?;
        writer.conn.execute_batch(KIT_SCHEMA).await?;
        writer.conn.execute_batch(schema).await?;
        schema_tx.commit().await?;
        writer.conn.busy_timeout(Duration::ZERO)?;
        let writer = Arc::new(tokio::sync::Mutex::new(AnyConn::Sqlite(writer)));
        Ok(Shared { db, writer, idle: Arc::new(Idle::new(16)) })
    }

    /// A reader connection from the pool (returned to it when dropped).
    pub async fn read(&self) -> anyhow::Result<Reader> {
        let conn = match self.idle.take() {
            Some(conn) => conn,
            None => AnyConn::Sqlite(Conn::open(&self.db, READ_BUSY_TIMEOUT).await?),
        };
        Ok(Reader::new(conn, self.idle.clone(), None))
    }

    /// Begins a write transaction, waiting up to `wait` for the write lock.
    /// IMMEDIATE takes the lock up front, so two replicas never deadlock
    /// upgrading a read lock.
    pub async fn begin_within(&self, wait: Duration) -> anyhow::Result<Tx> {
        let started = Instant::now();
        let guard = tokio::time::timeout(wait, self.writer.clone().lock_owned())
            .await
            .map_err(|_| StoreBusy(started.elapsed()))?;
        let AnyConn::Sqlite(conn) = &*guard else { unreachable!("the SQLite writer is a SQLite connection") };
        let tx = conn.begin_within(wait.saturating_sub(started.elapsed())).await?;
        Ok(Tx::sqlite(tx, guard))
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

    pub async fn execute(&self, sql: &str, params: Params) -> anyhow::Result<u64> {
        let statement = self.statement(sql).await?;
        let changed = statement.execute(params).await;
        statement.reset();
        Ok(changed? as u64)
    }

    pub async fn rows<T: DeserializeOwned>(&self, sql: &str, params: Params, limit: usize) -> anyhow::Result<Vec<T>> {
        let statement = self.statement(sql).await?;
        let result = collect(&statement, params, limit).await;
        // A stepped statement that is not reset keeps its read snapshot open.
        statement.reset();
        result
    }

    pub async fn value<T: DeserializeOwned>(&self, sql: &str, params: Params) -> anyhow::Result<Option<T>> {
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

    pub fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

async fn collect<T: DeserializeOwned>(statement: &Statement, params: Params, limit: usize) -> anyhow::Result<Vec<T>> {
    let mut rows = statement.query(params).await?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(row) = rows.next().await? else { break };
        out.push(libsql::de::from_row::<T>(&row).map_err(|err| anyhow::anyhow!("cannot read a row: {err}"))?);
    }
    Ok(out)
}

/// Whether `err` is SQLite's "busy" or "locked": another connection holds
/// the lock (a transient condition, unlike a broken store).
pub fn is_busy(err: &libsql::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    matches!(err, libsql::Error::SqliteFailure(code, _) if matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

/// Whether `cause` is SQLite failing rather than the statement: locked,
/// full, an I/O error.
pub fn is_failure(cause: &(dyn std::error::Error + 'static)) -> bool {
    const RETRYABLE: &[i32] = &[5, 6, 7, 10, 13, 14, 15]; // BUSY LOCKED NOMEM IOERR FULL CANTOPEN PROTOCOL
    matches!(cause.downcast_ref::<libsql::Error>(), Some(libsql::Error::SqliteFailure(code, _)) if RETRYABLE.contains(&(code & 0xff)))
}

#[cfg(test)]
mod tests {
    use super::super::{Store, is_store_failure};
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
        let mut rows = tx.connection().expect("a SQLite store").query("PRAGMA max_page_count = 8", ()).await.unwrap();
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
        super::super::handle::tests::committed_rows_are_seen_and_dropped_ones_are_not(&store).await;
    }
}
