//! One knowledge base in one directory (`<data_dir>/kb`): `documents.sqlite` for document records and
//! `index/` for the chunk index. Ingest walks files, decodes and parses them, cleans the text, and
//! compares the content hash with the stored one: unchanged documents are skipped, changed ones get a
//! new version and their old chunks are replaced, new ones start at version 1. Files that cannot be
//! read or parsed are listed in the report with the reason and the rest goes on. Removing a document
//! deletes its record and its chunks.
//!
//! With an embedding model attached ([`KnowledgeBase::load_embedder`]), each chunk also gets a vector in
//! `vectors.sqlite`, written and deleted with its document, and searches fuse the vector list with the
//! lexical ones (through an HNSW graph saved as `vectors.hnsw`). The model's directory is recorded, so later opens can load the same model
//! ([`KnowledgeBase::load_recorded_embedder`]); a different model drops the old vectors.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Instant,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    KnowledgeError, Result,
    chunk::{ChunkConfig, ParentSpan, chunk_text},
    clean::{CleanConfig, clean_text},
    embed::{BertEmbedder, Embedder},
    index::{ChunkIndex, ChunkRecord, Filters, Retriever, ScoredChunk, chunk_key},
    parse::{SourceDoc, parse_file},
    search::{SearchOptions, hybrid_search},
    store::{DocRecord, Store},
    upstream::UpstreamEmbedder,
    vectors::{VectorIndex, VectorMeta, VectorModel, VectorRetriever},
};

/// How documents are added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AddOptions {
    /// Tags added to every document (besides those the source carries).
    pub tags: Vec<String>,
    /// Tenant for documents whose source names none.
    pub tenant: Option<String>,
    /// Publication time for documents whose source gives none (unix seconds).
    pub published_at: Option<i64>,
    /// Delete stored documents from the given folders whose files are gone.
    pub prune: bool,
    /// Index threads.
    pub threads: usize,
}

/// A file that was skipped and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What an ingest run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Files looked at.
    pub files: usize,
    /// New documents.
    pub added: Vec<String>,
    /// Documents whose content changed (new version).
    pub updated: Vec<String>,
    /// Documents skipped because nothing changed.
    pub unchanged: usize,
    /// Documents deleted because their file is gone (`prune`).
    pub deleted: Vec<String>,
    /// Files skipped, with reasons.
    pub skipped: Vec<Skipped>,
    /// Chunks written.
    pub chunks: usize,
    /// Bytes of (re)processed text.
    pub bytes: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Statistics of a knowledge base.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KbStats {
    /// Documents stored.
    pub documents: usize,
    /// Chunks searchable.
    pub chunks: u64,
    /// Characters of stored text.
    pub chars: u64,
    /// Documents per tenant.
    pub tenants: Vec<(String, usize)>,
    /// Bytes on disk (index and store).
    pub disk_bytes: u64,
    /// Chunks with a vector.
    #[serde(default)]
    pub vectors: usize,
    /// The embedding model of the vectors, if any.
    #[serde(default)]
    pub vector_model: Option<VectorModel>,
}

/// A search request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchRequest {
    /// The query text.
    pub query: String,
    /// How many results.
    pub k: usize,
    /// Filters.
    pub filters: Filters,
    /// Ranking options.
    pub options: SearchOptions,
}

/// What every knowledge-base backend offers: the embedded one ([`KnowledgeBase`]: SQLite, tantivy, HNSW
/// files in one directory) and the scale-out one ([`crate::pg::PgKnowledgeBase`]: PostgreSQL with
/// pgvector, shared by several processes). Both take documents through [`prepare_doc`], so a document
/// gets the same id, version, chunks and citations whichever stores it.
pub trait KnowledgeStore {
    /// Ingests in-memory documents: unchanged ones are skipped, changed ones get a new version.
    fn add_docs(&mut self, docs: Vec<SourceDoc>, options: &AddOptions) -> Result<IngestReport>;
    /// Deletes a document and its chunks ([`KnowledgeError::NotFound`] when there is none).
    fn remove(&mut self, doc_id: &str) -> Result<()>;
    /// The stored record of a document.
    fn get(&self, doc_id: &str) -> Result<Option<DocRecord>>;
    /// The stored (cleaned) text of a document.
    fn text(&self, doc_id: &str) -> Result<Option<String>>;
    /// Every document.
    fn list(&self) -> Result<Vec<DocRecord>>;
    /// Hybrid search with filters.
    fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>>;
    /// Counts and sizes.
    fn stats(&self) -> Result<KbStats>;
    /// The parent spans of a document (empty when it has none).
    fn parents(&self, doc_id: &str) -> Result<Vec<ParentSpan>>;

    /// Whether the store can no longer answer and must be opened again (a PostgreSQL connection that
    /// the server closed); the embedded base never is.
    fn is_broken(&self) -> bool {
        false
    }

    /// Checks the citations of a model's `answer` to the `passages` it was given (see [`crate::cite`]):
    /// each cited passage must be the stored text of its document's current version and support the
    /// sentence that cites it.
    fn ground(&self, answer: &str, passages: &[ScoredChunk]) -> crate::cite::GroundedAnswer {
        let lookup = |chunk: &ChunkRecord| -> Option<String> {
            let record = self.get(&chunk.doc_id).ok().flatten()?;
            if record.version != chunk.version {
                return None;
            }
            self.text(&chunk.doc_id).ok().flatten()
        };
        crate::cite::ground(answer, passages, &lookup, crate::cite::MIN_SUPPORT)
    }

    /// Checks that a chunk's body is, verbatim, the stored text of its document's current version at its
    /// span (what a citation check does before a citation is returned).
    fn verify(&self, chunk: &ChunkRecord) -> Result<bool> {
        let Some(record) = self.get(&chunk.doc_id)? else { return Ok(false) };
        if record.version != chunk.version {
            return Ok(false);
        }
        let Some(text) = self.text(&chunk.doc_id)? else { return Ok(false) };
        let span: String = text
            .chars()
            .skip(chunk.start as usize)
            .take((chunk.end - chunk.start) as usize)
            .collect();
        Ok(span == chunk.body)
    }
}

impl KnowledgeStore for KnowledgeBase {
    fn add_docs(&mut self, docs: Vec<SourceDoc>, options: &AddOptions) -> Result<IngestReport> {
        KnowledgeBase::add_docs(self, docs, options)
    }

    fn remove(&mut self, doc_id: &str) -> Result<()> {
        KnowledgeBase::remove(self, doc_id)
    }

    fn get(&self, doc_id: &str) -> Result<Option<DocRecord>> {
        KnowledgeBase::get(self, doc_id)
    }

    fn text(&self, doc_id: &str) -> Result<Option<String>> {
        KnowledgeBase::text(self, doc_id)
    }

    fn list(&self) -> Result<Vec<DocRecord>> {
        KnowledgeBase::list(self)
    }

    fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>> {
        KnowledgeBase::search(self, request)
    }

    fn stats(&self) -> Result<KbStats> {
        KnowledgeBase::stats(self)
    }

    fn parents(&self, doc_id: &str) -> Result<Vec<ParentSpan>> {
        self.store.parents(doc_id)
    }
}

/// How many chunks a search asks its lists for: with parents, several hits may share one, so more are
/// taken before they are merged.
pub(crate) fn children_wanted(request: &SearchRequest) -> usize {
    if request.options.parents { request.k.saturating_mul(3) } else { request.k }
}

/// Small-to-big ([`SearchOptions::parents`]): replaces each hit by the parent span that holds it, its
/// body read verbatim from the stored text (id `doc:p<n>`, the best child's score), keeps the first of
/// hits sharing a parent, and cuts to `k`. A hit whose document has no parent stays as it is.
pub fn to_parents(
    store: &dyn KnowledgeStore,
    hits: Vec<ScoredChunk>,
    k: usize,
) -> Result<Vec<ScoredChunk>> {
    let mut out: Vec<ScoredChunk> = Vec::with_capacity(k);
    let mut seen: HashSet<String> = HashSet::new();
    for hit in hits {
        if out.len() >= k {
            break;
        }
        let c = &hit.chunk;
        let parents = store.parents(&c.doc_id)?;
        let holding = parents.iter().enumerate().find(|(_, p)| {
            p.start as u64 <= c.start && c.end <= p.end as u64 && p.end - p.start > 0
        });
        let text = match holding {
            Some(_) => {
                store.get(&c.doc_id)?.filter(|d| d.version == c.version).and(store.text(&c.doc_id)?)
            }
            None => None,
        };
        let (Some((n, span)), Some(text)) = (holding, text) else {
            if seen.insert(c.chunk_id.clone()) {
                out.push(hit);
            }
            continue;
        };
        let id = format!("{}:p{n}", c.doc_id);
        if !seen.insert(id.clone()) {
            continue;
        }
        let body: String = text.chars().skip(span.start).take(span.end - span.start).collect();
        let chunk = ChunkRecord {
            chunk_id: id,
            body,
            start: span.start as u64,
            end: span.end as u64,
            ..hit.chunk
        };
        out.push(ScoredChunk { score: hit.score, chunk });
    }
    Ok(out)
}

/// The knowledge base.
#[derive(Debug)]
pub struct KnowledgeBase {
    dir: PathBuf,
    store: Store,
    index: ChunkIndex,
    vectors: VectorIndex,
    embedder: Option<Box<dyn Embedder>>,
    /// How documents are chunked.
    pub chunking: ChunkConfig,
    /// How document text is cleaned before chunking.
    pub cleaning: CleanConfig,
    /// The API key for a recorded upstream embedding endpoint (keys are never stored).
    pub embed_api_key: Option<String>,
}

/// The stable id of a source: `d` + 16 hex digits of SHA-256 of the source string.
pub fn doc_id(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("d{hex}")
}

/// The documents to delete when `paths` were ingested with `prune`: those from a file under one of the
/// given folders whose source was not seen in this ingest (the file is gone, or no longer holds that
/// record). `seen` holds the sources read and the canonical paths of files that could not be read: a
/// file that fails to parse today keeps its documents.
pub fn gone(docs: &[DocRecord], paths: &[PathBuf], seen: &HashSet<String>) -> Vec<String> {
    let roots: Vec<PathBuf> =
        paths.iter().filter(|p| p.is_dir()).filter_map(|p| std::fs::canonicalize(p).ok()).collect();
    docs.iter()
        .filter(|doc| {
            let file = doc.source.split('#').next().unwrap_or_default();
            roots.iter().any(|r| Path::new(file).starts_with(r))
                && !seen.contains(&doc.source)
                && !seen.contains(file)
        })
        .map(|doc| doc.doc_id.clone())
        .collect()
}

/// A file's canonical path as document sources spell it.
pub fn canonical_display(file: &Path) -> String {
    std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()).display().to_string()
}

/// Files under `path` (itself if a file), sorted, hidden entries skipped.
fn walk(path: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<Skipped>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => {
            errors.push(Skipped { path: path.display().to_string(), reason: e.to_string() });
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        if child.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        walk(&child, out, errors);
    }
}

/// The files under `paths` (walked, sorted, hidden entries skipped); missing paths go to `skipped`.
pub fn list_files(paths: &[PathBuf], skipped: &mut Vec<Skipped>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if !path.exists() {
            skipped.push(Skipped {
                path: path.display().to_string(),
                reason: "no such file or directory".into(),
            });
            continue;
        }
        walk(path, &mut files, skipped);
    }
    files
}

/// The documents in one file, its source named by the canonical path (so the ids are the same whichever
/// backend or working directory ingests it); `Err` is the reason to skip it.
pub fn read_source(file: &Path) -> std::result::Result<Vec<SourceDoc>, String> {
    let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let bytes = std::fs::read(&canonical).map_err(|e| e.to_string())?;
    parse_file(&canonical, &bytes).map(|(docs, _)| docs)
}

impl KnowledgeBase {
    /// Opens the knowledge base in `dir`, creating it when absent.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| KnowledgeError::io(dir, e))?;
        let store = Store::open(&dir.join("documents.sqlite"))?;
        let index = ChunkIndex::open(&dir.join("index"))?;
        let vectors = VectorIndex::open(&dir.join("vectors.sqlite"))?;
        Ok(KnowledgeBase {
            dir: dir.to_path_buf(),
            store,
            index,
            vectors,
            embedder: None,
            chunking: ChunkConfig::default(),
            cleaning: CleanConfig::mappers_only(),
            embed_api_key: None,
        })
    }

    /// Attaches an upstream OpenAI-compatible embeddings endpoint (`base_url` like `http://host/v1`) as
    /// the embedding model, recorded for later opens (see [`KnowledgeBase::set_embedder`]).
    pub fn attach_upstream_embedder(
        &mut self,
        base_url: &str,
        model: &str,
        api_key: Option<String>,
    ) -> Result<bool> {
        let embedder = UpstreamEmbedder::connect(base_url, model, api_key)?;
        let location = embedder.base_url().to_owned();
        self.set_embedder(Box::new(embedder), Some(Path::new(&location)))
    }

    /// Attaches an embedding model: new and changed documents get vectors and searches use them. Returns
    /// true when the model differs from the one the stored vectors came from (they were dropped; run
    /// [`KnowledgeBase::embed_missing`] to recompute them). `path` is recorded for later opens.
    pub fn set_embedder(
        &mut self,
        embedder: Box<dyn Embedder>,
        path: Option<&Path>,
    ) -> Result<bool> {
        let model = VectorModel {
            name: embedder.name().to_owned(),
            dim: embedder.dim(),
            path: path.map(|p| p.display().to_string()),
        };
        let changed = self.vectors.set_model(model)?;
        self.embedder = Some(embedder);
        Ok(changed)
    }

    /// Loads a BERT-family model from `model_dir` and attaches it (see [`KnowledgeBase::set_embedder`]).
    pub fn load_embedder(&mut self, model_dir: &Path) -> Result<bool> {
        let canonical =
            std::fs::canonicalize(model_dir).map_err(|e| KnowledgeError::io(model_dir, e))?;
        let embedder = BertEmbedder::load(&canonical)?;
        self.set_embedder(Box::new(embedder), Some(&canonical))
    }

    /// Loads the model the stored vectors came from, if one is recorded; false when none is. A recorded
    /// model that cannot be loaded is an error: searching without it would silently drop the vector list.
    pub fn load_recorded_embedder(&mut self) -> Result<bool> {
        let Some(model) = self.vectors.model().cloned() else { return Ok(false) };
        let Some(path) = model.path else { return Ok(false) };
        if crate::upstream::is_url(&path) {
            let embedder =
                crate::upstream::load_recorded(&path, &model.name, self.embed_api_key.as_deref())?;
            self.set_embedder(embedder, Some(Path::new(&path)))?;
        } else {
            self.load_embedder(Path::new(&path))?;
        }
        Ok(true)
    }

    /// The attached embedding model.
    pub fn embedder(&self) -> Option<&dyn Embedder> {
        self.embedder.as_deref()
    }

    /// Computes vectors for every document whose chunks lack them (after attaching a new model);
    /// `progress(done, total)` is called after each document. Returns the chunks embedded.
    pub fn embed_missing(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<usize> {
        let Some(embedder) = self.embedder.as_deref() else {
            return Err(KnowledgeError::BadInput("no embedding model is attached".into()));
        };
        let docs = self.store.list()?;
        let searcher = self.index.searcher();
        let mut embedded = 0;
        for (n, doc) in docs.iter().enumerate() {
            if self.vectors.count_doc(&doc.doc_id) as u64 != doc.chunks {
                let chunks = searcher.chunks_of(&doc.doc_id)?;
                let texts: Vec<String> = chunks.iter().map(indexed_text).collect();
                embedded +=
                    put_vectors(&mut self.vectors, embedder, &doc_meta(doc), &chunks, &texts)?;
            }
            progress(n + 1, docs.len());
        }
        self.vectors.flush()?;
        Ok(embedded)
    }

    /// The stored record of a document.
    pub fn get(&self, doc_id: &str) -> Result<Option<DocRecord>> {
        self.store.get(doc_id)
    }

    /// The stored (cleaned) text of a document.
    pub fn text(&self, doc_id: &str) -> Result<Option<String>> {
        self.store.text(doc_id)
    }

    /// Every document.
    pub fn list(&self) -> Result<Vec<DocRecord>> {
        self.store.list()
    }

    /// Ingests files and folders; `progress(done, total)` is called after each file.
    pub fn add(
        &mut self,
        paths: &[PathBuf],
        options: &AddOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<IngestReport> {
        let started = Instant::now();
        let mut report = IngestReport::default();
        let files = list_files(paths, &mut report.skipped);
        report.files = files.len();
        let mut writer = self.index.writer(options.threads.max(1))?;
        let mut seen_sources: HashSet<String> = HashSet::new();
        let chunking = self.chunking;
        let cleaning = self.cleaning.clone();
        let total = files.len();
        let embedder = self.embedder.as_deref();
        let vectors = &mut self.vectors;
        self.store.transaction(|store| {
            for (n, file) in files.iter().enumerate() {
                match read_source(file) {
                    Err(reason) => {
                        seen_sources.insert(canonical_display(file));
                        report.skipped.push(Skipped { path: file.display().to_string(), reason });
                    }
                    Ok(docs) => {
                        for doc in docs {
                            seen_sources.insert(doc.source.clone());
                            ingest_one(
                                store,
                                &writer,
                                embedder.map(|e| (e, &mut *vectors)),
                                doc,
                                options,
                                &chunking,
                                &cleaning,
                                &mut report,
                            )?;
                        }
                    }
                }
                progress(n + 1, total);
            }
            if options.prune {
                for doc_id in gone(&store.list()?, paths, &seen_sources) {
                    writer.delete_doc(&doc_id);
                    vectors.delete_doc(&doc_id)?;
                    store.delete(&doc_id)?;
                    report.deleted.push(doc_id);
                }
            }
            writer.commit()
        })?;
        writer.finish()?;
        self.index.reload()?;
        self.vectors.flush()?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Ingests documents that are already in memory (e.g. from an API), same rules as files.
    pub fn add_docs(&mut self, docs: Vec<SourceDoc>, options: &AddOptions) -> Result<IngestReport> {
        let started = Instant::now();
        let mut report = IngestReport::default();
        let mut writer = self.index.writer(options.threads.max(1))?;
        let chunking = self.chunking;
        let cleaning = self.cleaning.clone();
        let embedder = self.embedder.as_deref();
        let vectors = &mut self.vectors;
        self.store.transaction(|store| {
            for doc in docs {
                let with_vectors = embedder.map(|e| (e, &mut *vectors));
                ingest_one(
                    store,
                    &writer,
                    with_vectors,
                    doc,
                    options,
                    &chunking,
                    &cleaning,
                    &mut report,
                )?;
            }
            writer.commit()
        })?;
        writer.finish()?;
        self.index.reload()?;
        self.vectors.flush()?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Deletes a document and its chunks.
    pub fn remove(&mut self, doc_id: &str) -> Result<()> {
        if self.store.get(doc_id)?.is_none() {
            return Err(KnowledgeError::NotFound(doc_id.to_owned()));
        }
        let writer = self.index.writer(1)?;
        writer.delete_doc(doc_id);
        writer.finish()?;
        self.vectors.delete_doc(doc_id)?;
        self.vectors.flush()?;
        self.store.delete(doc_id)?;
        self.index.reload()
    }

    /// Hybrid search with filters.
    pub fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>> {
        let vector = self
            .embedder
            .as_deref()
            .filter(|_| !self.vectors.is_empty())
            .map(|embedder| VectorRetriever { index: self.vectors.vectors(), embedder });
        let extra: Vec<(&dyn Retriever, f32)> = vector
            .as_ref()
            .map(|v| (v as &dyn Retriever, request.options.vector_weight))
            .into_iter()
            .collect();
        let hits = hybrid_search(
            &self.index.searcher(),
            &extra,
            &request.query,
            &request.filters,
            children_wanted(request),
            &request.options,
        )?;
        if request.options.parents { to_parents(self, hits, request.k) } else { Ok(hits) }
    }

    /// See [`KnowledgeStore::verify`].
    pub fn verify(&self, chunk: &ChunkRecord) -> Result<bool> {
        KnowledgeStore::verify(self, chunk)
    }

    /// See [`KnowledgeStore::ground`].
    pub fn ground(&self, answer: &str, passages: &[ScoredChunk]) -> crate::cite::GroundedAnswer {
        KnowledgeStore::ground(self, answer, passages)
    }

    /// Counts and sizes.
    pub fn stats(&self) -> Result<KbStats> {
        let docs = self.store.list()?;
        let mut tenants: Vec<(String, usize)> = Vec::new();
        for d in &docs {
            match tenants.iter_mut().find(|(t, _)| *t == d.tenant) {
                Some((_, n)) => *n += 1,
                None => tenants.push((d.tenant.clone(), 1)),
            }
        }
        Ok(KbStats {
            documents: docs.len(),
            chunks: self.index.searcher().num_chunks(),
            chars: docs.iter().map(|d| d.chars).sum(),
            tenants,
            disk_bytes: dir_size(&self.dir),
            vectors: self.vectors.len(),
            vector_model: self.vectors.model().cloned(),
        })
    }
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The text both lexical fields analyze and the embedder encodes: the document title (unless the heading
/// path already holds it), the heading path, and the body.
pub fn indexed_text(chunk: &ChunkRecord) -> String {
    let mut text = String::new();
    if !chunk.title.is_empty() && !chunk.heading.contains(&chunk.title) {
        text.push_str(&chunk.title);
        text.push('\n');
    }
    if !chunk.heading.is_empty() {
        text.push_str(&chunk.heading);
        text.push('\n');
    }
    text.push_str(&chunk.body);
    text
}

fn doc_meta(doc: &DocRecord) -> VectorMeta {
    VectorMeta {
        doc_id: doc.doc_id.clone(),
        tenant: doc.tenant.clone(),
        tags: doc.tags.clone(),
        published_at: doc.published_at,
    }
}

/// Embeds a document's chunks (their indexed texts) and replaces its vectors; returns how many.
fn put_vectors(
    vectors: &mut VectorIndex,
    embedder: &dyn Embedder,
    meta: &VectorMeta,
    chunks: &[ChunkRecord],
    texts: &[String],
) -> Result<usize> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embedded = embedder.embed(&refs)?;
    let items: Vec<(u64, Vec<f32>)> =
        chunks.iter().map(|c| chunk_key(&c.chunk_id)).zip(embedded).collect();
    vectors.put_doc(meta, &items)?;
    Ok(items.len())
}

/// A document cleaned, hashed, versioned and chunked: what every backend writes for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedDoc {
    /// The document record (new version and hash).
    pub record: DocRecord,
    /// The cleaned text, stored so citations can be checked verbatim.
    pub text: String,
    /// Parent spans of the chunks.
    pub parents: Vec<ParentSpan>,
    /// The chunks.
    pub chunks: Vec<ChunkRecord>,
    /// Each chunk's indexed text (see [`indexed_text`]).
    pub indexed: Vec<String>,
    /// Whether a previous version existed (its chunks must be replaced).
    pub replaces: bool,
}

impl PreparedDoc {
    /// The filter fields its vectors carry.
    pub fn vector_meta(&self) -> VectorMeta {
        doc_meta(&self.record)
    }
}

impl IngestReport {
    /// Counts a prepared document (added or updated, chunks, bytes).
    pub fn count(&mut self, doc: &PreparedDoc) {
        let id = doc.record.doc_id.clone();
        if doc.replaces {
            self.updated.push(id);
        } else {
            self.added.push(id);
        }
        self.chunks += doc.chunks.len();
        self.bytes += doc.text.len();
    }
}

/// Cleans, hashes and chunks `doc` against its stored `previous` record; `None` when nothing changed (same
/// content hash), so re-ingest skips it.
pub fn prepare_doc(
    doc: SourceDoc,
    options: &AddOptions,
    chunking: &ChunkConfig,
    cleaning: &CleanConfig,
    previous: Option<&DocRecord>,
) -> Option<PreparedDoc> {
    let id = doc_id(&doc.source);
    let text = clean_text(&doc.text, cleaning);
    let mut tags = doc.tags.clone();
    for t in &options.tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let tenant = doc
        .tenant
        .clone()
        .or_else(|| options.tenant.clone())
        .unwrap_or_else(|| "default".to_owned());
    let published_at = doc.published_at.or(options.published_at);
    let mut hasher = Sha256::new();
    for part in [
        text.as_str(),
        &doc.title,
        &tenant,
        &tags.join("\u{1f}"),
        &published_at.map(|p| p.to_string()).unwrap_or_default(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let hash: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if previous.is_some_and(|p| p.content_hash == hash) {
        return None;
    }
    let version = previous.map_or(1, |p| p.version + 1);
    let chunked = chunk_text(&text, chunking);
    let mut chunks = Vec::with_capacity(chunked.chunks.len());
    let mut indexed = Vec::with_capacity(chunked.chunks.len());
    for chunk in &chunked.chunks {
        let record = ChunkRecord {
            chunk_id: format!("{id}:{}", chunk.ord),
            doc_id: id.clone(),
            version,
            title: doc.title.clone(),
            heading: chunk.heading.clone(),
            body: chunk.body.clone(),
            start: chunk.start as u64,
            end: chunk.end as u64,
            published_at,
            tags: tags.clone(),
            tenant: tenant.clone(),
        };
        indexed.push(indexed_text(&record));
        chunks.push(record);
    }
    let record = DocRecord {
        doc_id: id,
        source: doc.source,
        title: doc.title,
        content_hash: hash,
        version,
        published_at,
        tags,
        tenant,
        chunks: chunks.len() as u64,
        chars: text.chars().count() as u64,
        ingested_at: crate::parse::unix_now(),
    };
    Some(PreparedDoc {
        record,
        text,
        parents: chunked.parents,
        chunks,
        indexed,
        replaces: previous.is_some(),
    })
}

#[allow(clippy::too_many_arguments)]
fn ingest_one(
    store: &Store,
    writer: &crate::index::ChunkWriter,
    with_vectors: Option<(&dyn Embedder, &mut VectorIndex)>,
    doc: SourceDoc,
    options: &AddOptions,
    chunking: &ChunkConfig,
    cleaning: &CleanConfig,
    report: &mut IngestReport,
) -> Result<()> {
    let previous = store.get(&doc_id(&doc.source))?;
    let Some(prepared) = prepare_doc(doc, options, chunking, cleaning, previous.as_ref()) else {
        report.unchanged += 1;
        return Ok(());
    };
    if prepared.replaces {
        writer.delete_doc(&prepared.record.doc_id);
    }
    for (chunk, text) in prepared.chunks.iter().zip(&prepared.indexed) {
        writer.add(chunk, text)?;
    }
    if let Some((embedder, vectors)) = with_vectors {
        let meta = prepared.vector_meta();
        put_vectors(vectors, embedder, &meta, &prepared.chunks, &prepared.indexed)?;
    }
    report.count(&prepared);
    store.upsert(&prepared.record, &prepared.text, &prepared.parents)
}
