//! The vector index: one unit vector per chunk, kept in SQLite (`vectors.sqlite` beside the lexical index)
//! so it survives restarts and updates per document, and held in memory as one flat matrix that a query
//! scans exactly. A flat scan is exact (no recall lost to an approximate graph) and, at 384 dimensions,
//! costs a few milliseconds per 100k chunks on one core; the vectors carry the same filter fields as the
//! lexical index (tenant, tags, `published_at`), so filters apply before ranking.
//!
//! The index records which model made its vectors: switching models clears them, because vectors of two
//! models are not comparable.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    KnowledgeError, Result,
    embed::{Embedder, dot},
    index::{Filters, Retriever},
};

/// The filter fields stored with a vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorMeta {
    /// The document it belongs to (deletes go by document).
    pub doc_id: String,
    /// The owning tenant.
    pub tenant: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Unix seconds, when known.
    pub published_at: Option<i64>,
}

impl VectorMeta {
    fn passes(&self, filters: &Filters) -> bool {
        if filters.tenant.as_ref().is_some_and(|t| *t != self.tenant) {
            return false;
        }
        if !filters.tags.iter().all(|t| self.tags.contains(t)) {
            return false;
        }
        if filters.since.is_some() || filters.until.is_some() {
            let Some(at) = self.published_at else { return false };
            if filters.since.is_some_and(|s| at < s) || filters.until.is_some_and(|u| at >= u) {
                return false;
            }
        }
        true
    }
}

/// Which model made the vectors, and where it was loaded from (so it can be loaded again).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VectorModel {
    /// The embedder's name.
    pub name: String,
    /// The vector dimension.
    pub dim: usize,
    /// The model directory, when it came from one.
    pub path: Option<String>,
}

/// The vectors in memory: one row per chunk. Separate from the SQLite connection so query threads can
/// share it.
#[derive(Debug, Default)]
pub struct FlatVectors {
    dim: usize,
    keys: Vec<u64>,
    metas: Vec<VectorMeta>,
    matrix: Vec<f32>,
}

/// The flat vector index.
#[derive(Debug)]
pub struct VectorIndex {
    conn: Connection,
    model: Option<VectorModel>,
    flat: FlatVectors,
}

fn store_error(err: rusqlite::Error) -> KnowledgeError {
    KnowledgeError::Store(err)
}

impl VectorIndex {
    /// Opens (creating) the index stored at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_connection(Connection::open(path)?)
    }

    /// An index that lives only in memory (evaluation runs).
    pub fn in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(conn: Connection) -> Result<Self> {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS model (id INTEGER PRIMARY KEY CHECK (id = 1),
                name TEXT NOT NULL, dim INTEGER NOT NULL, path TEXT);
             CREATE TABLE IF NOT EXISTS vectors (chunk_key INTEGER PRIMARY KEY, doc_id TEXT NOT NULL,
                tenant TEXT NOT NULL, tags TEXT NOT NULL, published_at INTEGER, vector BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS vectors_doc ON vectors(doc_id);",
        )?;
        let model = conn
            .query_row("SELECT name, dim, path FROM model WHERE id = 1", [], |r| {
                Ok(VectorModel {
                    name: r.get(0)?,
                    dim: r.get::<_, i64>(1)? as usize,
                    path: r.get(2)?,
                })
            })
            .optional()?;
        let dim = model.as_ref().map_or(0, |m| m.dim);
        let mut index =
            VectorIndex { conn, model, flat: FlatVectors { dim, ..FlatVectors::default() } };
        index.load()?;
        Ok(index)
    }

    fn load(&mut self) -> Result<()> {
        let dim = self.dim();
        let mut stmt = self.conn.prepare(
            "SELECT chunk_key, doc_id, tenant, tags, published_at, vector FROM vectors ORDER BY chunk_key",
        )?;
        let rows = stmt.query_map([], |r| {
            let tags: String = r.get(3)?;
            Ok((
                r.get::<_, i64>(0)? as u64,
                VectorMeta {
                    doc_id: r.get(1)?,
                    tenant: r.get(2)?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                    published_at: r.get(4)?,
                },
                r.get::<_, Vec<u8>>(5)?,
            ))
        })?;
        for row in rows {
            let (key, meta, blob) = row?;
            if blob.len() != dim * 4 {
                continue;
            }
            self.flat.keys.push(key);
            self.flat.metas.push(meta);
            self.flat
                .matrix
                .extend(blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        Ok(())
    }

    /// The model the stored vectors came from.
    pub fn model(&self) -> Option<&VectorModel> {
        self.model.as_ref()
    }

    /// The vector dimension (0 before a model is set).
    pub fn dim(&self) -> usize {
        self.model.as_ref().map_or(0, |m| m.dim)
    }

    /// How many chunks have a vector.
    pub fn len(&self) -> usize {
        self.flat.keys.len()
    }

    /// Whether no chunk has a vector.
    pub fn is_empty(&self) -> bool {
        self.flat.keys.is_empty()
    }

    /// How many vectors a document has.
    pub fn count_doc(&self, doc_id: &str) -> usize {
        self.flat.metas.iter().filter(|m| m.doc_id == doc_id).count()
    }

    /// The vectors in memory, for searching.
    pub fn flat(&self) -> &FlatVectors {
        &self.flat
    }

    /// Records the model; returns true when it differs from the stored one, in which case every stored
    /// vector was dropped (they must be recomputed).
    pub fn set_model(&mut self, model: VectorModel) -> Result<bool> {
        let same = self.model.as_ref().is_some_and(|m| m.name == model.name && m.dim == model.dim);
        if same {
            if self.model.as_ref().is_some_and(|m| m.path != model.path) {
                self.conn.execute("UPDATE model SET path = ?1 WHERE id = 1", [&model.path])?;
                self.model = Some(model);
            }
            return Ok(false);
        }
        self.conn.execute_batch("DELETE FROM vectors; DELETE FROM model;")?;
        self.conn.execute(
            "INSERT INTO model (id, name, dim, path) VALUES (1, ?1, ?2, ?3)",
            params![model.name, model.dim as i64, model.path],
        )?;
        self.flat = FlatVectors { dim: model.dim, ..FlatVectors::default() };
        self.model = Some(model);
        Ok(true)
    }

    /// Replaces a document's vectors with `items` (`chunk key`, vector); all share `meta`.
    pub fn put_doc(&mut self, meta: &VectorMeta, items: &[(u64, Vec<f32>)]) -> Result<()> {
        let dim = self.dim();
        if let Some((_, bad)) = items.iter().find(|(_, v)| v.len() != dim) {
            return Err(KnowledgeError::BadInput(format!(
                "vector of dimension {} for an index of dimension {dim}",
                bad.len()
            )));
        }
        self.delete_doc(&meta.doc_id)?;
        let tx = self.conn.unchecked_transaction().map_err(store_error)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO vectors (chunk_key, doc_id, tenant, tags, published_at, vector)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let tags = serde_json::to_string(&meta.tags).unwrap_or_else(|_| "[]".into());
            for (key, vector) in items {
                let blob: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                insert.execute(params![
                    *key as i64,
                    meta.doc_id,
                    meta.tenant,
                    tags,
                    meta.published_at,
                    blob
                ])?;
            }
        }
        tx.commit()?;
        for (key, vector) in items {
            self.flat.keys.push(*key);
            self.flat.metas.push(meta.clone());
            self.flat.matrix.extend_from_slice(vector);
        }
        Ok(())
    }

    /// Deletes a document's vectors.
    pub fn delete_doc(&mut self, doc_id: &str) -> Result<()> {
        if !self.flat.metas.iter().any(|m| m.doc_id == doc_id) {
            return Ok(());
        }
        self.conn.execute("DELETE FROM vectors WHERE doc_id = ?1", [doc_id])?;
        let dim = self.dim();
        let flat = &mut self.flat;
        let mut keep = 0;
        for i in 0..flat.keys.len() {
            if flat.metas[i].doc_id == doc_id {
                continue;
            }
            if keep != i {
                flat.keys[keep] = flat.keys[i];
                flat.metas.swap(keep, i);
                flat.matrix.copy_within(i * dim..(i + 1) * dim, keep * dim);
            }
            keep += 1;
        }
        flat.keys.truncate(keep);
        flat.metas.truncate(keep);
        flat.matrix.truncate(keep * dim);
        Ok(())
    }

    /// See [`FlatVectors::nearest`].
    pub fn nearest(&self, query: &[f32], filters: &Filters, k: usize) -> Vec<(u64, f32)> {
        self.flat.nearest(query, filters, k)
    }
}

impl FlatVectors {
    /// The `k` chunk keys whose vectors are closest (largest dot product) to `query`, within `filters`.
    pub fn nearest(&self, query: &[f32], filters: &Filters, k: usize) -> Vec<(u64, f32)> {
        let dim = self.dim;
        if dim == 0 || query.len() != dim || k == 0 {
            return Vec::new();
        }
        let open = *filters == Filters::default();
        let mut scored: Vec<(u64, f32)> = self
            .matrix
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| open || self.metas[*i].passes(filters))
            .map(|(i, row)| (self.keys[i], dot(row, query)))
            .collect();
        let by_score = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, by_score);
            scored.truncate(k);
        }
        scored.sort_by(by_score);
        scored
    }
}

/// The vector index and its embedder as a [`Retriever`]: the query is embedded, then scanned.
#[derive(Debug, Clone, Copy)]
pub struct VectorRetriever<'a> {
    /// The vectors.
    pub index: &'a FlatVectors,
    /// The model that made them.
    pub embedder: &'a dyn Embedder,
}

impl Retriever for VectorRetriever<'_> {
    fn name(&self) -> &str {
        "vector"
    }

    fn retrieve(&self, query: &str, filters: &Filters, k: usize) -> Result<Vec<(u64, f32)>> {
        let vectors = self.embedder.embed(&[query])?;
        let Some(vector) = vectors.first() else { return Ok(Vec::new()) };
        Ok(self.index.nearest(vector, filters, k))
    }
}
