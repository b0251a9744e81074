//! One knowledge base in one directory (`<data_dir>/kb`): `documents.sqlite` for document records and
//! `index/` for the chunk index. Ingest walks files, decodes and parses them, cleans the text, and
//! compares the content hash with the stored one: unchanged documents are skipped, changed ones get a
//! new version and their old chunks are replaced, new ones start at version 1. Files that cannot be
//! read or parsed are listed in the report with the reason and the rest goes on. Removing a document
//! deletes its record and its chunks.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Instant,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    KnowledgeError, Result,
    chunk::{ChunkConfig, chunk_text},
    clean::{CleanConfig, clean_text},
    index::{ChunkIndex, ChunkRecord, Filters, ScoredChunk},
    parse::{SourceDoc, parse_file},
    search::{SearchOptions, hybrid_search},
    store::{DocRecord, Store},
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
}

/// A search request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// The knowledge base.
#[derive(Debug)]
pub struct KnowledgeBase {
    dir: PathBuf,
    store: Store,
    index: ChunkIndex,
    /// How documents are chunked.
    pub chunking: ChunkConfig,
    /// How document text is cleaned before chunking.
    pub cleaning: CleanConfig,
}

/// The stable id of a source: `d` + 16 hex digits of SHA-256 of the source string.
pub fn doc_id(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("d{hex}")
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

impl KnowledgeBase {
    /// Opens the knowledge base in `dir`, creating it when absent.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| KnowledgeError::io(dir, e))?;
        let store = Store::open(&dir.join("documents.sqlite"))?;
        let index = ChunkIndex::open(&dir.join("index"))?;
        Ok(KnowledgeBase {
            dir: dir.to_path_buf(),
            store,
            index,
            chunking: ChunkConfig::default(),
            cleaning: CleanConfig::mappers_only(),
        })
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
        let mut files = Vec::new();
        for path in paths {
            if !path.exists() {
                report.skipped.push(Skipped {
                    path: path.display().to_string(),
                    reason: "no such file or directory".into(),
                });
                continue;
            }
            walk(path, &mut files, &mut report.skipped);
        }
        report.files = files.len();
        let mut writer = self.index.writer(options.threads.max(1))?;
        let mut seen_sources: HashSet<String> = HashSet::new();
        let chunking = self.chunking;
        let cleaning = self.cleaning.clone();
        let total = files.len();
        self.store.transaction(|store| {
            for (n, file) in files.iter().enumerate() {
                let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
                let parsed = std::fs::read(&canonical)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| parse_file(&canonical, &bytes));
                match parsed {
                    Err(reason) => {
                        report.skipped.push(Skipped { path: file.display().to_string(), reason });
                    }
                    Ok((docs, _)) => {
                        for doc in docs {
                            seen_sources.insert(doc.source.clone());
                            ingest_one(
                                store,
                                &writer,
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
                let roots: Vec<String> = paths
                    .iter()
                    .filter(|p| p.is_dir())
                    .filter_map(|p| std::fs::canonicalize(p).ok())
                    .map(|p| p.display().to_string())
                    .collect();
                for doc in store.list()? {
                    let file = doc.source.split('#').next().unwrap_or_default();
                    let under_root = roots.iter().any(|r| Path::new(file).starts_with(r));
                    if under_root && !seen_sources.contains(&doc.source) {
                        writer.delete_doc(&doc.doc_id);
                        store.delete(&doc.doc_id)?;
                        report.deleted.push(doc.doc_id);
                    }
                }
            }
            writer.commit()
        })?;
        writer.finish()?;
        self.index.reload()?;
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
        self.store.transaction(|store| {
            for doc in docs {
                ingest_one(store, &writer, doc, options, &chunking, &cleaning, &mut report)?;
            }
            writer.commit()
        })?;
        writer.finish()?;
        self.index.reload()?;
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
        self.store.delete(doc_id)?;
        self.index.reload()
    }

    /// Hybrid search with filters.
    pub fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>> {
        hybrid_search(
            &self.index.searcher(),
            &[],
            &request.query,
            &request.filters,
            request.k,
            &request.options,
        )
    }

    /// Checks that a chunk's body is, verbatim, the stored document text at its span (what a citation
    /// check does before a citation is returned).
    pub fn verify(&self, chunk: &ChunkRecord) -> Result<bool> {
        let Some(record) = self.store.get(&chunk.doc_id)? else { return Ok(false) };
        if record.version != chunk.version {
            return Ok(false);
        }
        let Some(text) = self.store.text(&chunk.doc_id)? else { return Ok(false) };
        let span: String = text
            .chars()
            .skip(chunk.start as usize)
            .take((chunk.end - chunk.start) as usize)
            .collect();
        Ok(span == chunk.body)
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

fn ingest_one(
    store: &Store,
    writer: &crate::index::ChunkWriter,
    doc: SourceDoc,
    options: &AddOptions,
    chunking: &ChunkConfig,
    cleaning: &CleanConfig,
    report: &mut IngestReport,
) -> Result<()> {
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
    let previous = store.get(&id)?;
    if previous.as_ref().is_some_and(|p| p.content_hash == hash) {
        report.unchanged += 1;
        return Ok(());
    }
    let version = previous.as_ref().map_or(1, |p| p.version + 1);
    if previous.is_some() {
        writer.delete_doc(&id);
        report.updated.push(id.clone());
    } else {
        report.added.push(id.clone());
    }
    let chunked = chunk_text(&text, chunking);
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
        let indexed = if doc.title.is_empty() || chunk.heading.contains(&doc.title) {
            chunk.indexed_text()
        } else {
            format!("{}\n{}", doc.title, chunk.indexed_text())
        };
        writer.add(&record, &indexed)?;
    }
    report.chunks += chunked.chunks.len();
    report.bytes += text.len();
    let record = DocRecord {
        doc_id: id,
        source: doc.source,
        title: doc.title,
        content_hash: hash,
        version,
        published_at,
        tags,
        tenant,
        chunks: chunked.chunks.len() as u64,
        chars: text.chars().count() as u64,
        ingested_at: crate::parse::unix_now(),
    };
    store.upsert(&record, &text, &chunked.parents)
}
