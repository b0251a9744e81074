//! The result store: every sample's raw answer, keyed by model, task version, sample and parameters,
//! written as soon as it arrives, so a killed run resumes and a repeated run reuses answers.
//!
//! The embedded default is one SQLite file. Scale-out runs (several `finllm eval` workers, or a team
//! sharing answers) point every process at one PostgreSQL database: the rows are the same, inserts are
//! idempotent upserts, so workers that overlap ask a sample at most once each and every later run reuses it.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// What the model said for one sample; everything else (prediction, extraction, scores) is recomputed
/// from it, so a fixed extractor never needs the model again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Log-probability of each option, in option order (log-likelihood path).
    pub loglik: Option<Vec<f64>>,
    /// The generated text (generation path).
    pub raw: Option<String>,
    /// The judge's verdict on `raw`, for tasks scored by a judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<crate::judge::Judged>,
}

/// The key of one stored answer: model, task version, sample id, parameters.
pub type Key<'a> = (&'a str, &'a str, &'a str, &'a str);

/// An open result store.
#[derive(Debug)]
pub struct Store {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Sqlite(Connection),
    Postgres(tokio_postgres::Client),
}

/// One table for both engines (PostgreSQL gets `eval_results`, so it can share a database with the
/// server's keys and audit tables; SQLite keeps `results` in its own file).
const POSTGRES_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS eval_results (
    model TEXT NOT NULL, task_version TEXT NOT NULL, sample TEXT NOT NULL, params TEXT NOT NULL,
    task TEXT NOT NULL, answer TEXT NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model, task_version, sample, params))";

/// Advisory lock id taken while creating the table, so workers starting together do not race on it.
const SCHEMA_LOCK: i64 = 0x4556_4520_5354_4f52;

impl Store {
    /// Opens (creating if needed) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Store, EvalError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
                path: dir.display().to_string(),
                error: source,
            })?;
        }
        let conn = Connection::open(path)?;
        // WAL with synchronous=NORMAL survives a killed process (what resume needs); only an OS crash can
        // lose the last answers, which are then asked again. It makes each insert ~7x cheaper than FULL.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS results (
               model TEXT NOT NULL, task_version TEXT NOT NULL, sample TEXT NOT NULL, params TEXT NOT NULL,
               task TEXT NOT NULL, answer TEXT NOT NULL, created TEXT NOT NULL DEFAULT (datetime('now')),
               PRIMARY KEY (model, task_version, sample, params));",
        )?;
        Ok(Store { inner: Inner::Sqlite(conn) })
    }

    /// Connects to the PostgreSQL store at `url` (`postgres://user:pass@host/db`), creating its table.
    /// Must be called inside a Tokio runtime, which then drives the connection.
    pub async fn connect(url: &str) -> Result<Store, EvalError> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            // The client's next query reports a dropped connection; nothing else can be done here.
            let _ = connection.await;
        });
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {POSTGRES_SCHEMA}; COMMIT;"
            ))
            .await?;
        Ok(Store { inner: Inner::Postgres(client) })
    }

    /// Opens `location`: a `postgres://` URL, else a SQLite path (`sqlite://` prefix optional).
    pub async fn open_location(location: &str) -> Result<Store, EvalError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Store::connect(location).await
        } else {
            Store::open(Path::new(location.strip_prefix("sqlite://").unwrap_or(location)))
        }
    }

    /// Which engine holds the answers, for logs: `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgres",
        }
    }

    /// The stored answer, if any.
    pub async fn get(&self, key: Key<'_>) -> Result<Option<Answer>, EvalError> {
        let (model, version, sample, params) = key;
        let text: Option<String> = match &self.inner {
            Inner::Sqlite(conn) => conn
                .query_row(
                    "SELECT answer FROM results WHERE model=?1 AND task_version=?2 AND sample=?3 AND params=?4",
                    params![model, version, sample, params],
                    |row| row.get(0),
                )
                .optional()?,
            Inner::Postgres(client) => client
                .query_opt(
                    "SELECT answer FROM eval_results
                     WHERE model=$1 AND task_version=$2 AND sample=$3 AND params=$4",
                    &[&model, &version, &sample, &params],
                )
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
        };
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| EvalError::Invalid(format!("stored answer: {e}")))
        })
        .transpose()
    }

    /// Stores (or replaces) an answer.
    pub async fn put(&self, key: Key<'_>, task: &str, answer: &Answer) -> Result<(), EvalError> {
        let text = serde_json::to_string(answer).map_err(|e| EvalError::Invalid(e.to_string()))?;
        let (model, version, sample, params) = key;
        match &self.inner {
            Inner::Sqlite(conn) => {
                conn.execute(
                    "INSERT OR REPLACE INTO results (model, task_version, sample, params, task, answer)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![model, version, sample, params, task, text],
                )?;
            }
            Inner::Postgres(client) => {
                client
                    .execute(
                        "INSERT INTO eval_results (model, task_version, sample, params, task, answer)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (model, task_version, sample, params)
                         DO UPDATE SET task = EXCLUDED.task, answer = EXCLUDED.answer, created = now()",
                        &[&model, &version, &sample, &params, &task, &text],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Number of stored answers for `model` (all tasks), or of every model with `None`.
    pub async fn count(&self, model: Option<&str>) -> Result<usize, EvalError> {
        let n: i64 = match (&self.inner, model) {
            (Inner::Sqlite(conn), None) => {
                conn.query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))?
            }
            (Inner::Sqlite(conn), Some(m)) => {
                conn.query_row("SELECT COUNT(*) FROM results WHERE model=?1", [m], |r| r.get(0))?
            }
            (Inner::Postgres(client), None) => {
                client.query_one("SELECT COUNT(*) FROM eval_results", &[]).await?.try_get(0)?
            }
            (Inner::Postgres(client), Some(m)) => client
                .query_one("SELECT COUNT(*) FROM eval_results WHERE model=$1", &[&m])
                .await?
                .try_get(0)?,
        };
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
