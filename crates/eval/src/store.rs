//! The result store: every sample's raw answer in SQLite, keyed by model, task version, sample and
//! parameters, written as soon as it arrives, so a killed run resumes and a repeated run reuses answers.

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
}

/// An open SQLite result store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
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
        Ok(Store { conn })
    }

    /// The stored answer, if any.
    pub fn get(
        &self,
        model: &str,
        version: &str,
        sample: &str,
        params: &str,
    ) -> Result<Option<Answer>, EvalError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT answer FROM results WHERE model=?1 AND task_version=?2 AND sample=?3 AND params=?4",
                params![model, version, sample, params],
                |row| row.get(0),
            )
            .optional()?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| EvalError::Invalid(format!("stored answer: {e}")))
        })
        .transpose()
    }

    /// Stores (or replaces) an answer.
    pub fn put(
        &self,
        key: (&str, &str, &str, &str),
        task: &str,
        answer: &Answer,
    ) -> Result<(), EvalError> {
        let text = serde_json::to_string(answer).map_err(|e| EvalError::Invalid(e.to_string()))?;
        self.conn.execute(
            "INSERT OR REPLACE INTO results (model, task_version, sample, params, task, answer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![key.0, key.1, key.2, key.3, task, text],
        )?;
        Ok(())
    }

    /// Number of stored answers (all models and tasks).
    pub fn len(&self) -> Result<usize, EvalError> {
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> Result<bool, EvalError> {
        Ok(self.len()? == 0)
    }
}
