//! Durable server state: API keys and the hash-chained audit trail, in SQLite or PostgreSQL.
//!
//! The embedded default is one SQLite file in the data directory. Scale-out deployments point every replica
//! at one PostgreSQL database; appends then take a transaction-scoped advisory lock so that the chain stays a
//! single line however many replicas write. Both engines store the same rows, so `finllm audit verify` and
//! `export` read either.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use sha2::{Digest, Sha256};
use types::{Code, ErrorCode};

/// Where the server keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (created with its parent directory when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string, `postgres://user@host/db`.
    Postgres(String),
}

impl Database {
    /// Reads a `database.url` value: `postgres://...`, `sqlite://PATH` or a bare path.
    pub fn parse(url: &str) -> Database {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Database::Postgres(url.to_owned())
        } else {
            Database::Sqlite(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What failed.
        source: rusqlite::Error,
    },
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database directory could not be created.
    #[error("cannot create {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A stored row does not have the expected shape.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The named key does not exist.
    #[error("no API key with id {0}")]
    NoSuchKey(String),
}

impl ErrorCode for StoreError {
    fn error_code(&self) -> Code {
        match self {
            StoreError::NoSuchKey(_) => Code::NotFound,
            _ => Code::StorageError,
        }
    }
}

/// The hash that precedes the first record of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain hash of record `seq` with text `record` after `prev_hash`.
pub fn chain_hash(prev_hash: &str, seq: i64, record: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"|");
    hasher.update(seq.to_string().as_bytes());
    hasher.update(b"|");
    hasher.update(record.as_bytes());
    hex(&hasher.finalize())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One stored audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The record's JSON text, exactly as hashed.
    pub record: String,
    /// The previous row's hash.
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

/// A stored API key (never the key itself: only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyRecord {
    /// Public id, shown in lists and the audit trail.
    pub id: String,
    /// A human name.
    pub name: String,
    /// The tenant the key acts for.
    pub tenant: String,
    /// Models the key may use; empty means all.
    pub models: Vec<String>,
    /// Requests per minute; `None` is unlimited.
    pub requests_per_minute: Option<u32>,
    /// Tokens (prompt + completion) per minute; `None` is unlimited.
    pub tokens_per_minute: Option<u32>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// The schema, with `{seq}` the integer type of audit sequence numbers (SQLite `INTEGER`, PostgreSQL `BIGINT`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tenant TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    models TEXT NOT NULL,
    requests_per_minute INTEGER,
    tokens_per_minute INTEGER,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq {seq} PRIMARY KEY,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
";

/// Serialises appends across replicas sharing one PostgreSQL database.
const AUDIT_LOCK_ID: i64 = 0x6669_6e6c_6c6d;

/// The server's durable state.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    Sqlite { path: String, conn: Mutex<rusqlite::Connection> },
    Postgres { client: tokio::sync::Mutex<tokio_postgres::Client> },
}

impl Store {
    /// Opens (and creates the schema of) the database.
    pub async fn open(database: &Database) -> Result<Store, StoreError> {
        let inner = match database {
            Database::Sqlite(path) => {
                let shown = path.display().to_string();
                if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let conn = open_sqlite(path)
                    .map_err(|source| StoreError::Sqlite { path: shown.clone(), source })?;
                Inner::Sqlite { path: shown, conn: Mutex::new(conn) }
            }
            Database::Postgres(url) => {
                let (client, connection) =
                    tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::error!("postgres connection ended: {err}");
                    }
                });
                client.batch_execute(&SCHEMA.replace("{seq}", "BIGINT")).await?;
                Inner::Postgres { client: tokio::sync::Mutex::new(client) }
            }
        };
        Ok(Store { inner: Arc::new(inner) })
    }

    /// Runs `f` on the SQLite connection on a blocking thread.
    async fn sqlite<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let Inner::Sqlite { path, conn } = &*inner else {
                return Err(StoreError::Corrupt {
                    table: "-",
                    detail: "not a sqlite store".to_owned(),
                });
            };
            let mut conn = conn.lock().map_err(|_| StoreError::Corrupt {
                table: "-",
                detail: "sqlite connection poisoned by an earlier panic".to_owned(),
            })?;
            f(&mut conn).map_err(|source| StoreError::Sqlite { path: path.clone(), source })
        })
        .await;
        joined.map_err(|err| StoreError::Corrupt {
            table: "-",
            detail: format!("storage task failed: {err}"),
        })?
    }

    /// Appends a record to the chain and returns its row.
    pub async fn append_audit(&self, record: String) -> Result<AuditRow, StoreError> {
        match &*self.inner {
            Inner::Sqlite { .. } => {
                self.sqlite(move |conn| {
                    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let last: Option<(i64, String)> = tx
                        .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })
                        .map(Some)
                        .or_else(|err| match err {
                            rusqlite::Error::QueryReturnedNoRows => Ok(None),
                            err => Err(err),
                        })?;
                    let row = next_row(last, record);
                    tx.execute(
                        "INSERT INTO audit_log (seq, record, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![row.seq, row.record, row.prev_hash, row.hash],
                    )?;
                    tx.commit()?;
                    Ok(row)
                })
                .await
            }
            Inner::Postgres { client } => {
                let mut client = client.lock().await;
                let tx = client.transaction().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK_ID]).await?;
                let last = tx
                    .query_opt("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", &[])
                    .await?
                    .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)));
                let row = next_row(last, record);
                tx.execute(
                    "INSERT INTO audit_log (seq, record, prev_hash, hash) VALUES ($1, $2, $3, $4)",
                    &[&row.seq, &row.record, &row.prev_hash, &row.hash],
                )
                .await?;
                tx.commit().await?;
                Ok(row)
            }
        }
    }

    /// Every audit row in chain order.
    pub async fn audit_rows(&self) -> Result<Vec<AuditRow>, StoreError> {
        match &*self.inner {
            Inner::Sqlite { .. } => {
                self.sqlite(|conn| {
                    let mut stmt = conn.prepare(
                        "SELECT seq, record, prev_hash, hash FROM audit_log ORDER BY seq",
                    )?;
                    let rows = stmt.query_map([], |row| {
                        Ok(AuditRow {
                            seq: row.get(0)?,
                            record: row.get(1)?,
                            prev_hash: row.get(2)?,
                            hash: row.get(3)?,
                        })
                    })?;
                    rows.collect()
                })
                .await
            }
            Inner::Postgres { client } => {
                let client = client.lock().await;
                let rows = client
                    .query("SELECT seq, record, prev_hash, hash FROM audit_log ORDER BY seq", &[])
                    .await?;
                Ok(rows
                    .iter()
                    .map(|row| AuditRow {
                        seq: row.get(0),
                        record: row.get(1),
                        prev_hash: row.get(2),
                        hash: row.get(3),
                    })
                    .collect())
            }
        }
    }

    /// Stores a new key record with the SHA-256 of its secret.
    pub async fn insert_key(&self, key: KeyRecord, key_hash: String) -> Result<(), StoreError> {
        let models = key.models.join(",");
        let rpm = key.requests_per_minute.map(i64::from);
        let tpm = key.tokens_per_minute.map(i64::from);
        match &*self.inner {
            Inner::Sqlite { .. } => {
                self.sqlite(move |conn| {
                    conn.execute(
                        "INSERT INTO api_keys (id, name, tenant, key_hash, models, requests_per_minute, \
                         tokens_per_minute, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        rusqlite::params![key.id, key.name, key.tenant, key_hash, models, rpm, tpm, key.created_at],
                    )
                    .map(|_| ())
                })
                .await
            }
            Inner::Postgres { client } => {
                let rpm = rpm.map(|v| v as i32);
                let tpm = tpm.map(|v| v as i32);
                client
                    .lock()
                    .await
                    .execute(
                        "INSERT INTO api_keys (id, name, tenant, key_hash, models, requests_per_minute, \
                         tokens_per_minute, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        &[&key.id, &key.name, &key.tenant, &key_hash, &models, &rpm, &tpm, &key.created_at],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Every key, newest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.keys_where("1 = 1", None).await
    }

    /// The active (not revoked) key whose secret hashes to `key_hash`.
    pub async fn find_active_key(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self
            .keys_where("key_hash = $1 AND revoked_at IS NULL", Some(key_hash.to_owned()))
            .await?
            .pop())
    }

    /// Whether any active key exists: without one the server stays on loopback.
    pub async fn has_active_keys(&self) -> Result<bool, StoreError> {
        Ok(!self.keys_where("revoked_at IS NULL", None).await?.is_empty())
    }

    async fn keys_where(
        &self,
        condition: &'static str,
        param: Option<String>,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!(
            "SELECT id, name, tenant, models, requests_per_minute, tokens_per_minute, created_at, revoked_at \
             FROM api_keys WHERE {condition} ORDER BY created_at DESC, id DESC"
        );
        match &*self.inner {
            Inner::Sqlite { .. } => {
                let sql = sql.replace("$1", "?1");
                self.sqlite(move |conn| {
                    let mut stmt = conn.prepare(&sql)?;
                    let map = |row: &rusqlite::Row<'_>| {
                        Ok(key_record(
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                            &row.get::<_, String>(3)?,
                            row.get::<_, Option<i64>>(4)?,
                            row.get::<_, Option<i64>>(5)?,
                            row.get(6)?,
                            row.get(7)?,
                        ))
                    };
                    let rows = match &param {
                        Some(p) => {
                            stmt.query_map([p], map)?.collect::<rusqlite::Result<Vec<_>>>()?
                        }
                        None => stmt.query_map([], map)?.collect::<rusqlite::Result<Vec<_>>>()?,
                    };
                    Ok(rows)
                })
                .await
            }
            Inner::Postgres { client } => {
                let client = client.lock().await;
                let rows = match &param {
                    Some(p) => client.query(&sql, &[p]).await?,
                    None => client.query(&sql, &[]).await?,
                };
                Ok(rows
                    .iter()
                    .map(|row| {
                        key_record(
                            row.get(0),
                            row.get(1),
                            row.get(2),
                            &row.get::<_, String>(3),
                            row.get::<_, Option<i32>>(4).map(i64::from),
                            row.get::<_, Option<i32>>(5).map(i64::from),
                            row.get(6),
                            row.get(7),
                        )
                    })
                    .collect())
            }
        }
    }

    /// Marks a key revoked; it stops working at once.
    pub async fn revoke_key(&self, id: &str, at: String) -> Result<(), StoreError> {
        let id = id.to_owned();
        let changed =
            match &*self.inner {
                Inner::Sqlite { .. } => {
                    let id = id.clone();
                    self.sqlite(move |conn| {
                        conn.execute(
                        "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                        [&at, &id],
                    )
                    })
                    .await? as u64
                }
                Inner::Postgres { client } => client
                    .lock()
                    .await
                    .execute(
                        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                        &[&at, &id],
                    )
                    .await?,
            };
        if changed == 0 { Err(StoreError::NoSuchKey(id)) } else { Ok(()) }
    }
}

#[allow(clippy::too_many_arguments, reason = "one argument per column")]
fn key_record(
    id: String,
    name: String,
    tenant: String,
    models: &str,
    rpm: Option<i64>,
    tpm: Option<i64>,
    created_at: String,
    revoked_at: Option<String>,
) -> KeyRecord {
    KeyRecord {
        id,
        name,
        tenant,
        models: models.split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect(),
        requests_per_minute: rpm.and_then(|v| u32::try_from(v).ok()),
        tokens_per_minute: tpm.and_then(|v| u32::try_from(v).ok()),
        created_at,
        revoked_at,
    }
}

fn next_row(last: Option<(i64, String)>, record: String) -> AuditRow {
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let hash = chain_hash(&prev_hash, seq, &record);
    AuditRow { seq, record, prev_hash, hash }
}

fn open_sqlite(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    // WAL lets `finllm audit verify` read while the server appends; a busy timeout covers the CLI and the
    // server writing keys at the same moment.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(&SCHEMA.replace("{seq}", "INTEGER"))?;
    Ok(conn)
}
