//! Document records in SQLite (`<kb>/documents.sqlite`): the RecordManager of the knowledge base. Each
//! row keeps the stable id, the source, the content hash and version (so re-ingest skips what did not
//! change and bumps the version of what did), the metadata, the cleaned text (so a citation's character
//! span can be checked verbatim against the stored source) and the parent-chunk spans. tantivy holds the
//! chunks for search; SQLite is the source of truth for documents, transactional and queryable.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{Result, chunk::ParentSpan};

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRecord {
    /// Stable id derived from the source.
    pub doc_id: String,
    /// Path or URL (with `#record` for corpus records).
    pub source: String,
    /// Title.
    pub title: String,
    /// SHA-256 of the cleaned text and metadata.
    pub content_hash: String,
    /// 1 on first ingest, +1 on every change.
    pub version: u64,
    /// Unix seconds, when known.
    pub published_at: Option<i64>,
    /// Tags.
    pub tags: Vec<String>,
    /// Owning tenant.
    pub tenant: String,
    /// Number of (child) chunks indexed.
    pub chunks: u64,
    /// Characters of cleaned text.
    pub chars: u64,
    /// Unix seconds of the last (re)ingest.
    pub ingested_at: i64,
}

/// The SQLite document store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

const COLUMNS: &str = "doc_id, source, title, content_hash, version, published_at, tags, tenant, chunks, chars, ingested_at";

fn row_to_doc(row: &rusqlite::Row<'_>) -> rusqlite::Result<DocRecord> {
    let tags: String = row.get(6)?;
    Ok(DocRecord {
        doc_id: row.get(0)?,
        source: row.get(1)?,
        title: row.get(2)?,
        content_hash: row.get(3)?,
        version: row.get::<_, i64>(4)? as u64,
        published_at: row.get(5)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        tenant: row.get(7)?,
        chunks: row.get::<_, i64>(8)? as u64,
        chars: row.get::<_, i64>(9)? as u64,
        ingested_at: row.get(10)?,
    })
}

impl Store {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS documents (
                doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL,
                content_hash TEXT NOT NULL, version INTEGER NOT NULL, published_at INTEGER,
                tags TEXT NOT NULL, tenant TEXT NOT NULL, chunks INTEGER NOT NULL, chars INTEGER NOT NULL,
                ingested_at INTEGER NOT NULL, text TEXT NOT NULL, parents TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS documents_source ON documents(source);",
        )?;
        Ok(Store { conn })
    }

    /// The record of `doc_id`, if stored.
    pub fn get(&self, doc_id: &str) -> Result<Option<DocRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM documents WHERE doc_id = ?1");
        Ok(self.conn.query_row(&sql, [doc_id], row_to_doc).optional()?)
    }

    /// Every document, by source.
    pub fn list(&self) -> Result<Vec<DocRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM documents ORDER BY source");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], row_to_doc)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The stored cleaned text of a document (what chunk spans index into).
    pub fn text(&self, doc_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT text FROM documents WHERE doc_id = ?1", [doc_id], |r| r.get(0))
            .optional()?)
    }

    /// The parent spans of a document.
    pub fn parents(&self, doc_id: &str) -> Result<Vec<ParentSpan>> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT parents FROM documents WHERE doc_id = ?1", [doc_id], |r| r.get(0))
            .optional()?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
    }

    /// Inserts or replaces a document with its text and parent spans.
    pub fn upsert(&self, doc: &DocRecord, text: &str, parents: &[ParentSpan]) -> Result<()> {
        let tags = serde_json::to_string(&doc.tags).unwrap_or_else(|_| "[]".into());
        let parents = serde_json::to_string(parents).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            &format!("INSERT OR REPLACE INTO documents ({COLUMNS}, text, parents) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)"),
            params![
                doc.doc_id, doc.source, doc.title, doc.content_hash, doc.version as i64, doc.published_at, tags,
                doc.tenant, doc.chunks as i64, doc.chars as i64, doc.ingested_at, text, parents
            ],
        )?;
        Ok(())
    }

    /// Deletes a document; returns whether it existed.
    pub fn delete(&self, doc_id: &str) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM documents WHERE doc_id = ?1", [doc_id])? > 0)
    }

    /// Runs `f` in one transaction (bulk ingest is much faster that way).
    pub fn transaction<T>(&mut self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                self.conn.execute_batch("ROLLBACK").ok();
                Err(e)
            }
        }
    }
}
