//! The vector index: one unit vector per chunk, kept in SQLite (`vectors.sqlite` beside the lexical index)
//! so it survives restarts and updates per document, and searched through an HNSW graph ([`crate::hnsw`])
//! saved beside it (`vectors.hnsw`), so a query at 100k chunks visits a few thousand vectors instead of
//! scanning all of them. SQLite stays the source of truth: a missing or stale graph is rebuilt from the
//! rows. Small collections are scanned exactly. The vectors carry the same filter fields as the lexical
//! index (tenant, tags, `published_at`), so filters apply before ranking.
//!
//! The index records which model made its vectors: switching models clears them, because vectors of two
//! models are not comparable.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    KnowledgeError, Result,
    embed::Embedder,
    hnsw::{Hnsw, HnswParams},
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

/// Below this many live vectors a query scans them all: exact, and as fast as walking a graph.
pub const FLAT_MAX: usize = 2_000;

/// The searchable vectors: the HNSW graph plus each chunk's filter fields. Separate from the SQLite
/// connection so query threads can share it.
#[derive(Debug, Clone)]
pub struct VectorSet {
    graph: Hnsw,
    metas: HashMap<u64, Arc<VectorMeta>>,
    docs: HashMap<String, (Arc<VectorMeta>, Vec<u64>)>,
}

impl VectorSet {
    fn new(dim: usize, params: HnswParams) -> Self {
        VectorSet { graph: Hnsw::new(dim, params), metas: HashMap::new(), docs: HashMap::new() }
    }

    /// The graph.
    pub fn graph(&self) -> &Hnsw {
        &self.graph
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.graph.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.graph.is_empty()
    }

    fn remember(&mut self, key: u64, meta: &Arc<VectorMeta>) {
        self.metas.insert(key, Arc::clone(meta));
        self.docs
            .entry(meta.doc_id.clone())
            .or_insert_with(|| (Arc::clone(meta), Vec::new()))
            .1
            .push(key);
    }

    fn forget_doc(&mut self, doc_id: &str) -> bool {
        let Some((_, keys)) = self.docs.remove(doc_id) else { return false };
        for key in keys {
            self.graph.delete(key);
            self.metas.remove(&key);
        }
        true
    }

    /// The `k` chunk keys whose vectors are closest (largest dot product) to `query`, within `filters`.
    /// Small sets, and filters that pass under a tenth of the vectors, are scanned exactly; otherwise the
    /// graph is searched (with the filter applied to what it keeps, not to where it walks).
    pub fn nearest(&self, query: &[f32], filters: &Filters, k: usize) -> Vec<(u64, f32)> {
        let open = *filters == Filters::default();
        let accept = |key: u64| open || self.metas.get(&key).is_some_and(|m| m.passes(filters));
        if self.graph.len() <= FLAT_MAX {
            return self.graph.exact(query, k, &accept);
        }
        if !open {
            let passing: usize = self
                .docs
                .values()
                .filter(|(meta, _)| meta.passes(filters))
                .map(|(_, keys)| keys.len())
                .sum();
            if passing * 10 < self.graph.len() {
                return self.graph.exact(query, k, &accept);
            }
        }
        self.graph.search(query, k, &accept)
    }

    /// The exact answer to [`VectorSet::nearest`] (every vector scored), for comparisons.
    pub fn nearest_exact(&self, query: &[f32], filters: &Filters, k: usize) -> Vec<(u64, f32)> {
        let open = *filters == Filters::default();
        let accept = |key: u64| open || self.metas.get(&key).is_some_and(|m| m.passes(filters));
        self.graph.exact(query, k, &accept)
    }
}

/// The vector index: SQLite rows (the source of truth) and the graph built from them, saved beside them
/// (`vectors.hnsw`) so an open does not rebuild it.
#[derive(Debug)]
pub struct VectorIndex {
    conn: Connection,
    graph_path: Option<PathBuf>,
    model: Option<VectorModel>,
    set: VectorSet,
    /// Bumped in SQLite with every change; the saved graph carries the value it was saved at, so a graph
    /// that missed a change (a crash before it was saved) is rebuilt, not trusted.
    generation: u64,
    dirty: bool,
}

fn store_error(err: rusqlite::Error) -> KnowledgeError {
    KnowledgeError::Store(err)
}

/// Share of tombstones above which a delete rebuilds the graph without them.
const COMPACT_AT: f64 = 0.3;

impl VectorIndex {
    /// Opens (creating) the index stored at `path`; the graph lives at `path` with extension `hnsw`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_connection(Connection::open(path)?, Some(path.with_extension("hnsw")))
    }

    /// An index that lives only in memory (evaluation runs).
    pub fn in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?, None)
    }

    fn from_connection(conn: Connection, graph_path: Option<PathBuf>) -> Result<Self> {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS model (id INTEGER PRIMARY KEY CHECK (id = 1),
                name TEXT NOT NULL, dim INTEGER NOT NULL, path TEXT);
             CREATE TABLE IF NOT EXISTS vectors (chunk_key INTEGER PRIMARY KEY, doc_id TEXT NOT NULL,
                tenant TEXT NOT NULL, tags TEXT NOT NULL, published_at INTEGER, vector BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS vectors_doc ON vectors(doc_id);
             CREATE TABLE IF NOT EXISTS generation (id INTEGER PRIMARY KEY CHECK (id = 1),
                value INTEGER NOT NULL);
             INSERT OR IGNORE INTO generation (id, value) VALUES (1, 0);",
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
        let generation = conn
            .query_row("SELECT value FROM generation WHERE id = 1", [], |r| r.get::<_, i64>(0))?
            as u64;
        let dim = model.as_ref().map_or(0, |m| m.dim);
        let mut index = VectorIndex {
            conn,
            graph_path,
            model,
            set: VectorSet::new(dim, HnswParams::default()),
            generation,
            dirty: false,
        };
        index.load()?;
        Ok(index)
    }

    /// The saved graph, when it is of this generation and dimension.
    fn saved_graph(&self) -> Option<Hnsw> {
        let path = self.graph_path.as_ref()?;
        let (graph, stamp) = Hnsw::load(path).ok()?;
        (stamp == self.generation && graph.dim() == self.dim()).then_some(graph)
    }

    fn load(&mut self) -> Result<()> {
        let dim = self.dim();
        let saved = self.saved_graph();
        let with_vectors = saved.is_none();
        let mut stmt = self.conn.prepare(if with_vectors {
            "SELECT chunk_key, doc_id, tenant, tags, published_at, vector FROM vectors ORDER BY chunk_key"
        } else {
            "SELECT chunk_key, doc_id, tenant, tags, published_at FROM vectors ORDER BY chunk_key"
        })?;
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
                if with_vectors { r.get::<_, Vec<u8>>(5)? } else { Vec::new() },
            ))
        })?;
        let mut set = VectorSet::new(dim, HnswParams::default());
        let mut last: Option<Arc<VectorMeta>> = None;
        let mut vector = Vec::with_capacity(dim);
        for row in rows {
            let (key, meta, blob) = row?;
            if with_vectors {
                if blob.len() != dim * 4 {
                    continue;
                }
                vector.clear();
                vector.extend(
                    blob.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                set.graph.insert(key, &vector)?;
            }
            let meta = match last.take() {
                Some(previous) if *previous == meta => previous,
                _ => Arc::new(meta),
            };
            set.remember(key, &meta);
            last = Some(meta);
        }
        drop(stmt);
        match saved {
            // The saved graph must hold exactly the stored keys, else it is rebuilt from the rows.
            Some(graph)
                if graph.len() == set.metas.len()
                    && set.metas.keys().all(|k| graph.contains(*k)) =>
            {
                set.graph = graph;
                self.set = set;
            }
            Some(_) => {
                self.set = set;
                return self.reload_rows();
            }
            None => {
                self.dirty = true;
                self.set = set;
            }
        }
        Ok(())
    }

    /// Rebuilds the graph from the SQLite rows (after finding a saved graph that does not match them).
    fn reload_rows(&mut self) -> Result<()> {
        self.bump()?;
        self.load()
    }

    fn bump(&mut self) -> Result<()> {
        self.generation = self.conn.query_row(
            "UPDATE generation SET value = value + 1 WHERE id = 1 RETURNING value",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64;
        self.dirty = true;
        Ok(())
    }

    /// Saves the graph when it changed since it was last saved (in-memory indexes have nowhere to save).
    pub fn flush(&mut self) -> Result<()> {
        if let (true, Some(path)) = (self.dirty, &self.graph_path) {
            self.set.graph.save(path, self.generation)?;
            self.dirty = false;
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
        self.set.len()
    }

    /// Whether no chunk has a vector.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// How many vectors a document has.
    pub fn count_doc(&self, doc_id: &str) -> usize {
        self.set.docs.get(doc_id).map_or(0, |(_, keys)| keys.len())
    }

    /// The vectors in memory, for searching.
    pub fn vectors(&self) -> &VectorSet {
        &self.set
    }

    /// Sets how many candidates a graph search keeps (recall against speed).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.set.graph.set_ef_search(ef);
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
        self.bump()?;
        self.set = VectorSet::new(model.dim, self.set.graph.params());
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
        self.bump()?;
        let shared = Arc::new(meta.clone());
        for (key, vector) in items {
            // A key already held by another document moves to this one.
            if let Some(owner) = self.set.metas.get(key).map(|m| m.doc_id.clone())
                && let Some((_, keys)) = self.set.docs.get_mut(&owner)
            {
                keys.retain(|k| k != key);
            }
            self.set.graph.insert(*key, vector)?;
            self.set.remember(*key, &shared);
        }
        Ok(())
    }

    /// Deletes a document's vectors (tombstones in the graph, compacted once they are many).
    pub fn delete_doc(&mut self, doc_id: &str) -> Result<()> {
        if !self.set.docs.contains_key(doc_id) {
            return Ok(());
        }
        self.conn.execute("DELETE FROM vectors WHERE doc_id = ?1", [doc_id])?;
        self.bump()?;
        self.set.forget_doc(doc_id);
        if self.set.graph.dead_share() > COMPACT_AT && self.set.graph.nodes() > 64 {
            self.set.graph = self.set.graph.compacted()?;
        }
        Ok(())
    }

    /// See [`VectorSet::nearest`].
    pub fn nearest(&self, query: &[f32], filters: &Filters, k: usize) -> Vec<(u64, f32)> {
        self.set.nearest(query, filters, k)
    }
}

impl Drop for VectorIndex {
    fn drop(&mut self) {
        // Best effort: a graph that is not saved is rebuilt from the rows on the next open.
        let _ = self.flush();
    }
}

/// The vector index and its embedder as a [`Retriever`]: the query is embedded, then scanned.
#[derive(Debug, Clone, Copy)]
pub struct VectorRetriever<'a> {
    /// The vectors.
    pub index: &'a VectorSet,
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
