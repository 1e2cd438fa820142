//! The PostgreSQL backend (tokio-postgres): a service's tables live in a
//! schema named after the service, so services sharing a server share no
//! tables. Every connection is pooled with its prepared statements.
//!
//! Write transactions run at REPEATABLE READ rather than SERIALIZABLE: the
//! services' writes are inserts of new rows and updates of rows they have
//! just read by key, where REPEATABLE READ already fails a lost update with
//! 40001 (and inserts never do), while SERIALIZABLE would also fail the
//! concurrent inserts of two order replicas on index predicate locks. A
//! 40001 or 40P01 is a store failure ([`is_failure`]): the consumer and
//! the relay retry it with their bounded backoff; HTTP writers answer 503.

use std::collections::HashMap;
use std::error::Error;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::BytesMut;
use libsql::Value;
use libsql::params::Params;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use super::dialect;
use super::handle::{Conn as AnyConn, Idle, KIT_SCHEMA, Reader, StoreBusy, Tx};

/// Connections one process opens at most (the server's default limit is
/// 100, shared by every replica of every service).
const CONNECTIONS: usize = 8;

/// A service's schema on a PostgreSQL server.
pub struct Shared {
    config: Config,
    schema: String,
    idle: Arc<Idle>,
    permits: Arc<Semaphore>,
}

impl Shared {
    /// Connects, creates schema `service` and applies the kit's and the
    /// service's tables in it.
    pub async fn open(url: &str, service: &str, ddl: &str) -> anyhow::Result<Shared> {
        let config = Config::from_str(url).with_context(|| format!("{} is not a PostgreSQL URL", redacted(url)))?;
        let schema = service.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let shared = Shared { config, schema, idle: Arc::new(Idle::new(CONNECTIONS)), permits: Arc::new(Semaphore::new(CONNECTIONS)) };
        let conn = Conn::connect(&shared.config, None).await?;
        // Replicas starting together would race on the catalog (CREATE …
        // IF NOT EXISTS is not safe against a concurrent CREATE).
        let setup = format!(
            "SELECT pg_advisory_lock(hashtext('stormproof.{0}'));
             CREATE SCHEMA IF NOT EXISTS \"{0}\";
             SET search_path TO \"{0}\";
             {1}
             {2}
             SELECT pg_advisory_unlock(hashtext('stormproof.{0}'));",
            shared.schema,
            dialect::schema(KIT_SCHEMA),
            dialect::schema(ddl)
        );
        conn.client.batch_execute(&setup).await.with_context(|| format!("cannot set up schema {}", shared.schema))?;
        drop(conn);
        Ok(shared)
    }

    async fn checkout(&self, wait: Duration) -> anyhow::Result<Reader> {
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreBusy(wait))?
            .expect("the semaphore is never closed");
        let conn = match self.idle.take() {
            Some(AnyConn::Postgres(conn)) => {
                conn.clean().await?;
                conn
            }
            _ => Conn::connect(&self.config, Some(&self.schema)).await?,
        };
        Ok(Reader::new(AnyConn::Postgres(conn), self.idle.clone(), Some(permit)))
    }

    pub async fn read(&self) -> anyhow::Result<Reader> {
        self.checkout(Duration::from_secs(5)).await
    }

    pub async fn begin_within(&self, wait: Duration) -> anyhow::Result<Tx> {
        let reader = self.checkout(wait).await?;
        let AnyConn::Postgres(conn) = &*reader else { unreachable!("a PostgreSQL pool holds PostgreSQL connections") };
        conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
        Ok(Tx::postgres(reader))
    }
}

/// A PostgreSQL connection with its prepared statements.
pub struct Conn {
    client: Client,
    statements: Mutex<HashMap<String, (Statement, bool)>>,
    last_id: AtomicI64,
    dirty: AtomicBool,
}

impl Conn {
    async fn connect(config: &Config, schema: Option<&str>) -> anyhow::Result<Conn> {
        let (client, connection) = config.connect(NoTls).await.context("cannot connect to PostgreSQL")?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!("PostgreSQL connection: {err}");
            }
        });
        if let Some(schema) = schema {
            client.batch_execute(&format!("SET search_path TO \"{schema}\"")).await?;
        }
        Ok(Conn { client, statements: Mutex::default(), last_id: AtomicI64::new(0), dirty: AtomicBool::new(false) })
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Rolls back what a dropped transaction left open.
    async fn clean(&self) -> anyhow::Result<()> {
        if self.dirty.swap(false, Ordering::Relaxed) {
            self.batch("ROLLBACK").await?;
        }
        Ok(())
    }

    pub async fn batch(&self, sql: &str) -> anyhow::Result<()> {
        Ok(self.client.batch_execute(sql).await?)
    }

    /// The prepared statement for `sql` (SQLite's dialect), translated and
    /// prepared on first use; and whether it returns the inserted rows.
    async fn statement(&self, sql: &str) -> anyhow::Result<(Statement, bool)> {
        if let Some(prepared) = self.statements.lock().unwrap_or_else(|e| e.into_inner()).get(sql) {
            return Ok(prepared.clone());
        }
        let translated = dialect::statement(sql);
        let statement = self.client.prepare(&translated.sql).await.with_context(|| format!("cannot prepare `{}`", translated.sql))?;
        let prepared = (statement, translated.returns_id);
        self.statements.lock().unwrap_or_else(|e| e.into_inner()).insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }

    async fn query(&self, sql: &str, params: Params) -> anyhow::Result<(Vec<Row>, bool)> {
        let (statement, returns_id) = self.statement(sql).await?;
        let values = positional(params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        Ok((self.client.query(&statement, &refs).await?, returns_id))
    }

    pub async fn execute(&self, sql: &str, params: Params) -> anyhow::Result<u64> {
        let (statement, returns_id) = self.statement(sql).await?;
        if !returns_id {
            let values = positional(params)?;
            let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            return Ok(self.client.execute(&statement, &refs).await?);
        }
        let (rows, _) = self.query(sql, params).await?;
        if let Some(id) = rows.last().and_then(|row| row.try_get::<_, i64>(0).ok()) {
            self.last_id.store(id, Ordering::Relaxed);
        }
        Ok(rows.len() as u64)
    }

    pub async fn rows<T: DeserializeOwned>(&self, sql: &str, params: Params, limit: usize) -> anyhow::Result<Vec<T>> {
        let (rows, _) = self.query(sql, params).await?;
        rows.iter()
            .take(limit)
            .map(|row| serde_json::from_value(serde_json::Value::Object(json_row(row)?)).map_err(|err| anyhow::anyhow!("cannot read a row: {err}")))
            .collect()
    }

    pub async fn value<T: DeserializeOwned>(&self, sql: &str, params: Params) -> anyhow::Result<Option<T>> {
        let (rows, _) = self.query(sql, params).await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let value = json_column(row, 0)?;
        Ok(Some(serde_json::from_value(value).map_err(|err| anyhow::anyhow!("cannot read a value: {err}"))?))
    }

    pub fn last_insert_id(&self) -> i64 {
        self.last_id.load(Ordering::Relaxed)
    }

    pub async fn advance_ids(&self, table: &'static str, column: &'static str) -> anyhow::Result<()> {
        let sql = format!("SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}), false)");
        self.batch(&sql).await
    }
}

fn positional(params: Params) -> anyhow::Result<Vec<Param>> {
    match params {
        Params::None => Ok(Vec::new()),
        Params::Positional(values) => Ok(values.into_iter().map(Param).collect()),
        Params::Named(_) => anyhow::bail!("named parameters are SQLite-only; use ?N"),
    }
}

/// A row as JSON, keyed by column name, for serde to map onto a struct.
fn json_row(row: &Row) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    (0..row.len()).map(|i| Ok((row.columns()[i].name().to_string(), json_column(row, i)?))).collect()
}

fn json_column(row: &Row, i: usize) -> anyhow::Result<serde_json::Value> {
    use serde_json::Value as J;
    let ty = row.columns()[i].type_().clone();
    let value = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(J::from),
        Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(J::from),
        Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(J::from),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(J::from),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(i)?.map(J::from),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(J::from),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(J::from),
        _ => row.try_get::<_, Option<String>>(i).with_context(|| format!("column {} has type {ty}, which the store does not read", row.columns()[i].name()))?.map(J::from),
    };
    Ok(value.unwrap_or(J::Null))
}

/// A SQLite-typed parameter, written as whatever type PostgreSQL inferred
/// for its placeholder (an integer bound to a TEXT column becomes text, as
/// SQLite's type affinity would make it).
#[derive(Debug)]
struct Param(Value);

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match &self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().to_sql(ty, out),
            },
            Value::Real(r) => match *ty {
                Type::FLOAT8 => r.to_sql(ty, out),
                Type::FLOAT4 => (*r as f32).to_sql(ty, out),
                _ => r.to_string().to_sql(ty, out),
            },
            Value::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                _ => s.to_sql(ty, out),
            },
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Whether `cause` is PostgreSQL failing rather than the statement: a lost
/// connection, a serialization failure or deadlock, the server out of
/// resources or shutting down.
pub fn is_failure(cause: &(dyn Error + 'static)) -> bool {
    let Some(err) = cause.downcast_ref::<tokio_postgres::Error>() else { return false };
    match err.code().map(|code| code.code()) {
        None => err.is_closed() || err.source().is_some_and(|s| s.is::<std::io::Error>()),
        Some(code) => code == "40001" || code == "40P01" || code.starts_with("08") || code.starts_with("53") || code.starts_with("57P"),
    }
}

/// `url` without its password, for error messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::handle::tests::committed_rows_are_seen_and_dropped_ones_are_not;
    use super::super::{Store, is_store_failure};
    use crate::platform::local::{PrivateCluster, server_binaries};

    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB);
                          CREATE TABLE IF NOT EXISTS u (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT UNIQUE, n INTEGER NOT NULL DEFAULT 0);";

    #[tokio::test(flavor = "multi_thread")]
    async fn the_store_api_holds_on_postgres_with_ids_from_the_database_and_lost_updates_as_store_failures() {
        if server_binaries().is_none() {
            println!("SKIPPED: no PostgreSQL server installed (initdb)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cluster = PrivateCluster::start(dir.path()).await.unwrap();
        let store = Store::open_postgres(&cluster.url(), "kit.test", SCHEMA).await.unwrap();
        committed_rows_are_seen_and_dropped_ones_are_not(&store).await;

        // Two replicas (two stores) inserting at once never share an id.
        let other = Store::open_postgres(&cluster.url(), "kit.test", SCHEMA).await.unwrap();
        let insert = |store: Store, k: String| async move {
            let tx = store.begin().await.unwrap();
            assert_eq!(tx.execute("INSERT OR IGNORE INTO u (k) VALUES (?1)", libsql::params![k]).await.unwrap(), 1);
            let id = tx.last_insert_rowid();
            tx.commit().await.unwrap();
            id
        };
        let ids = futures::future::join_all((0..40).map(|i| insert(if i % 2 == 0 { store.clone() } else { other.clone() }, format!("k{i}")))).await;
        assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 40, "{ids:?}");
        let tx = store.begin().await.unwrap();
        assert_eq!(tx.execute("INSERT OR IGNORE INTO u (k) VALUES (?1)", libsql::params!["k0"]).await.unwrap(), 0, "ignored");
        let duplicate = tx.execute("INSERT INTO u (k) VALUES (?1)", libsql::params!["k0"]).await.expect_err("a unique violation");
        assert!(!is_store_failure(&duplicate), "a constraint violation is the request's fault: {duplicate:#}");
        drop(tx);

        // A concurrent update of the same row: the later writer fails with
        // 40001, a store failure its caller retries.
        let (a, b) = (store.begin().await.unwrap(), other.begin().await.unwrap());
        let n: Option<i64> = b.value("SELECT n FROM u WHERE k = ?1", libsql::params!["k1"]).await.unwrap();
        assert_eq!(n, Some(0));
        a.execute("UPDATE u SET n = n + 1 WHERE k = ?1", libsql::params!["k1"]).await.unwrap();
        a.commit().await.unwrap();
        let lost = b.execute("UPDATE u SET n = n + 1 WHERE k = ?1", libsql::params!["k1"]).await.expect_err("a lost update");
        assert!(is_store_failure(&lost), "{lost:#}");
        drop(b);
        let n: Option<i64> = other.read().await.unwrap().value("SELECT n FROM u WHERE k = 'k1'", ()).await.unwrap();
        assert_eq!(n, Some(1), "the pooled connection was rolled back and serves again");
        cluster.stop();
    }
}
