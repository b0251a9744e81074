//! The on-disk tantivy index: one document per chunk, two BM25 fields over the same text (jieba search
//! mode and character bigrams), stored citation data (document id, version, title, body, character
//! span) and filter fields (tenant, tags, `published_at`). Each lexical field is a [`Retriever`]; the
//! knowledge base fuses their ranked lists, so a vector retriever plugs in beside them later.

use std::{ops::Bound, path::Path};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
    collector::TopDocs,
    directory::MmapDirectory,
    query::{BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery},
    schema::{
        FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
        TextOptions, Value,
    },
    tokenizer::TextAnalyzer,
};

use crate::{
    KnowledgeError, Result,
    tokenize::{BIGRAM, FnTokenizer, JIEBA, bigram_tokens, jieba_tokens},
};

/// A chunk as it goes into the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// `doc_id:ord`, unique in the knowledge base.
    pub chunk_id: String,
    /// The stable document id.
    pub doc_id: String,
    /// The document version this chunk was cut from.
    pub version: u64,
    /// Document title.
    pub title: String,
    /// Heading path the chunk sits under.
    pub heading: String,
    /// The chunk body, exactly `source[start..end]` (characters).
    pub body: String,
    /// First character of the body in the document text.
    pub start: u64,
    /// One past the last character.
    pub end: u64,
    /// Unix seconds, when known.
    pub published_at: Option<i64>,
    /// Tags for filtering.
    pub tags: Vec<String>,
    /// Tenant that owns the document.
    pub tenant: String,
}

/// A retrieved chunk with everything a citation needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredChunk {
    /// The fused score (higher is better).
    pub score: f32,
    /// The indexed chunk.
    #[serde(flatten)]
    pub chunk: ChunkRecord,
}

/// Restrictions every retriever applies before ranking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filters {
    /// Only this tenant's chunks.
    pub tenant: Option<String>,
    /// Only chunks carrying every one of these tags.
    pub tags: Vec<String>,
    /// Only chunks published at or after (unix seconds).
    pub since: Option<i64>,
    /// Only chunks published before (unix seconds).
    pub until: Option<i64>,
}

/// The two lexical fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LexicalField {
    /// Jieba search-mode words with the finance dictionary.
    Jieba,
    /// Overlapping CJK character bigrams.
    Bigram,
}

impl LexicalField {
    /// The name used in ranked lists and reports.
    pub fn name(self) -> &'static str {
        match self {
            LexicalField::Jieba => "jieba",
            LexicalField::Bigram => "bigram",
        }
    }

    /// The analyzed query terms for this field.
    pub fn tokens(self, text: &str) -> Vec<String> {
        match self {
            LexicalField::Jieba => jieba_tokens(text),
            LexicalField::Bigram => bigram_tokens(text),
        }
    }
}

/// Anything that turns a query into a ranked list of chunk keys: the lexical fields now, a vector
/// index later. Keys are [`chunk_key`] of the chunk id, shared by all retrievers.
pub trait Retriever {
    /// The list's name in fusion and reports.
    fn name(&self) -> &str;
    /// Up to `k` chunk keys best first, with the retriever's scores.
    fn retrieve(&self, query: &str, filters: &Filters, k: usize) -> Result<Vec<(u64, f32)>>;
}

/// The 64-bit key of a chunk id: the first 8 bytes of its SHA-256.
pub fn chunk_key(chunk_id: &str) -> u64 {
    let digest = Sha256::digest(chunk_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    chunk_id: Field,
    chunk_key: Field,
    doc_id: Field,
    version: Field,
    title: Field,
    heading: Field,
    body: Field,
    jieba: Field,
    bigram: Field,
    start: Field,
    end: Field,
    published_at: Field,
    tags: Field,
    tenant: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let lexical = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let fields = Fields {
        chunk_id: b.add_text_field("chunk_id", STRING | STORED),
        chunk_key: b.add_u64_field("chunk_key", INDEXED | FAST),
        doc_id: b.add_text_field("doc_id", STRING | STORED),
        version: b.add_u64_field("version", STORED),
        title: b.add_text_field("title", STORED),
        heading: b.add_text_field("heading", STORED),
        body: b.add_text_field("body", STORED),
        jieba: b.add_text_field("jieba", lexical(JIEBA)),
        bigram: b.add_text_field("bigram", lexical(BIGRAM)),
        start: b.add_u64_field("start", STORED),
        end: b.add_u64_field("end", STORED),
        published_at: b.add_i64_field("published_at", INDEXED | FAST | STORED),
        tags: b.add_text_field("tags", STRING | STORED),
        tenant: b.add_text_field("tenant", STRING | STORED),
    };
    (b.build(), fields)
}

/// The chunk index in one directory.
pub struct ChunkIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl std::fmt::Debug for ChunkIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkIndex").finish_non_exhaustive()
    }
}

impl ChunkIndex {
    /// Opens the index in `dir`, creating it when absent.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| KnowledgeError::io(dir, e))?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir)
            .map_err(|e| KnowledgeError::BadInput(format!("{}: {e}", dir.display())))?;
        let index = Index::open_or_create(directory, schema)?;
        index.tokenizers().register(JIEBA, TextAnalyzer::from(FnTokenizer(jieba_tokens)));
        index.tokenizers().register(BIGRAM, TextAnalyzer::from(FnTokenizer(bigram_tokens)));
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(ChunkIndex { index, reader, fields })
    }

    /// A writer using `threads` indexing threads.
    pub fn writer(&self, threads: usize) -> Result<ChunkWriter> {
        let threads = threads.max(1);
        let writer = self.index.writer_with_num_threads(threads, threads * 64 * 1024 * 1024)?;
        Ok(ChunkWriter { writer, fields: self.fields })
    }

    /// Merges every segment into one (after a bulk ingest): each segment adds per-query work, so a
    /// one-segment index answers fastest. Returns the segment count before.
    pub fn optimize(&self) -> Result<usize> {
        let ids = self.index.searchable_segment_ids()?;
        if ids.len() > 1 {
            let mut writer: IndexWriter =
                self.index.writer_with_num_threads(1, 64 * 1024 * 1024)?;
            let _merged = writer.merge(&ids).wait()?;
            writer.commit()?;
            writer.wait_merging_threads()?;
        }
        self.reload()?;
        Ok(ids.len())
    }

    /// Makes committed changes visible to searches.
    pub fn reload(&self) -> Result<()> {
        Ok(self.reader.reload()?)
    }

    /// A point-in-time view for searching; cheap, and shareable across threads.
    pub fn searcher(&self) -> IndexSearcher {
        let searcher = self.reader.searcher();
        // Open each segment's chunk-key column once per view, not once per hit.
        let keys = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64("chunk_key").ok())
            .collect();
        IndexSearcher { searcher, fields: self.fields, keys: std::sync::Arc::new(keys) }
    }
}

/// Adds and deletes chunks; nothing is visible until [`ChunkWriter::commit`] and a reload.
pub struct ChunkWriter {
    writer: IndexWriter,
    fields: Fields,
}

impl std::fmt::Debug for ChunkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkWriter").finish_non_exhaustive()
    }
}

impl ChunkWriter {
    /// Queues one chunk; `indexed_text` is what both lexical fields analyze.
    pub fn add(&self, chunk: &ChunkRecord, indexed_text: &str) -> Result<()> {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_text(f.chunk_id, &chunk.chunk_id);
        doc.add_u64(f.chunk_key, chunk_key(&chunk.chunk_id));
        doc.add_text(f.doc_id, &chunk.doc_id);
        doc.add_u64(f.version, chunk.version);
        doc.add_text(f.title, &chunk.title);
        doc.add_text(f.heading, &chunk.heading);
        doc.add_text(f.body, &chunk.body);
        doc.add_text(f.jieba, indexed_text);
        doc.add_text(f.bigram, indexed_text);
        doc.add_u64(f.start, chunk.start);
        doc.add_u64(f.end, chunk.end);
        if let Some(at) = chunk.published_at {
            doc.add_i64(f.published_at, at);
        }
        for tag in &chunk.tags {
            doc.add_text(f.tags, tag);
        }
        doc.add_text(f.tenant, &chunk.tenant);
        self.writer.add_document(doc)?;
        Ok(())
    }

    /// Queues the deletion of every chunk of a document.
    pub fn delete_doc(&self, doc_id: &str) {
        self.writer.delete_term(Term::from_field_text(self.fields.doc_id, doc_id));
    }

    /// Makes queued changes durable.
    pub fn commit(&mut self) -> Result<()> {
        self.writer.commit()?;
        Ok(())
    }

    /// Commits, then waits for background merges so deleted chunks are physically dropped.
    pub fn finish(mut self) -> Result<()> {
        self.writer.commit()?;
        self.writer.wait_merging_threads()?;
        Ok(())
    }
}

/// A point-in-time searcher over the chunk index.
#[derive(Clone)]
pub struct IndexSearcher {
    searcher: Searcher,
    fields: Fields,
    keys: std::sync::Arc<Vec<Option<tantivy::columnar::Column<u64>>>>,
}

impl std::fmt::Debug for IndexSearcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexSearcher").field("chunks", &self.num_chunks()).finish()
    }
}

impl IndexSearcher {
    /// How many segments the index has (each adds per-query work).
    pub fn segments(&self) -> usize {
        self.searcher.segment_readers().len()
    }

    /// How many chunks are searchable.
    pub fn num_chunks(&self) -> u64 {
        self.searcher.num_docs()
    }

    fn filter_clauses(&self, filters: &Filters) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.fields;
        let mut out: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let term = |field: Field, value: &str| -> Box<dyn Query> {
            let q = TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic);
            Box::new(ConstScoreQuery::new(Box::new(q), 0.0))
        };
        if let Some(tenant) = &filters.tenant {
            out.push((Occur::Must, term(f.tenant, tenant)));
        }
        for tag in &filters.tags {
            out.push((Occur::Must, term(f.tags, tag)));
        }
        if filters.since.is_some() || filters.until.is_some() {
            let lower = filters.since.map_or(Bound::Unbounded, |s| {
                Bound::Included(Term::from_field_i64(f.published_at, s))
            });
            let upper = filters.until.map_or(Bound::Unbounded, |u| {
                Bound::Excluded(Term::from_field_i64(f.published_at, u))
            });
            out.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(RangeQuery::new(lower, upper)), 0.0)),
            ));
        }
        out
    }

    /// BM25 over one lexical field: an OR of the query's analyzed terms, within the filters.
    pub fn lexical(
        &self,
        field: LexicalField,
        query: &str,
        filters: &Filters,
        k: usize,
    ) -> Result<Vec<(DocAddress, f32)>> {
        self.lexical_pruned(field, query, filters, k, 1.0)
    }

    /// [`IndexSearcher::lexical`], leaving out terms found in more than `max_df_share` of the chunks
    /// (and in over 1,000 of them), unless that would leave none: such terms add almost nothing to BM25 (their IDF is near 0) but
    /// their long posting lists dominate the query's cost. Repeated terms are queried once.
    pub fn lexical_pruned(
        &self,
        field: LexicalField,
        query: &str,
        filters: &Filters,
        k: usize,
        max_df_share: f32,
    ) -> Result<Vec<(DocAddress, f32)>> {
        let target = match field {
            LexicalField::Jieba => self.fields.jieba,
            LexicalField::Bigram => self.fields.bigram,
        };
        let mut tokens = field.tokens(query);
        tokens.sort();
        tokens.dedup();
        let mut terms: Vec<Term> =
            tokens.iter().map(|t| Term::from_field_text(target, t)).collect();
        if max_df_share < 1.0 {
            // Small indexes are fast anyway: a term in at most MIN_COMMON chunks is never dropped.
            const MIN_COMMON: u64 = 1_000;
            let limit = ((f64::from(max_df_share) * self.searcher.num_docs() as f64) as u64)
                .max(MIN_COMMON);
            let mut kept = Vec::with_capacity(terms.len());
            for term in &terms {
                let df = self.searcher.doc_freq(term)?;
                if df > 0 && df <= limit {
                    kept.push(term.clone());
                }
            }
            if !kept.is_empty() {
                terms = kept;
            }
        }
        let terms: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|term| {
                let q = TermQuery::new(term, IndexRecordOption::WithFreqs);
                (Occur::Should, Box::new(q) as Box<dyn Query>)
            })
            .collect();
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let mut clauses = self.filter_clauses(filters);
        let query: Box<dyn Query> = if clauses.is_empty() {
            Box::new(BooleanQuery::new(terms))
        } else {
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(terms))));
            Box::new(BooleanQuery::new(clauses))
        };
        let hits = self.searcher.search(&query, &TopDocs::with_limit(k).order_by_score())?;
        Ok(hits.into_iter().map(|(score, addr)| (addr, score)).collect())
    }

    /// The chunk key of a hit.
    pub fn key_of(&self, addr: DocAddress) -> Result<u64> {
        self.keys
            .get(addr.segment_ord as usize)
            .and_then(|column| column.as_ref()?.first(addr.doc_id))
            .ok_or_else(|| KnowledgeError::BadInput("chunk without a key".into()))
    }

    /// Finds a chunk by key (for keys that came from a non-lexical retriever).
    pub fn address_of(&self, key: u64) -> Result<Option<DocAddress>> {
        let q = TermQuery::new(
            Term::from_field_u64(self.fields.chunk_key, key),
            IndexRecordOption::Basic,
        );
        let hits = self.searcher.search(&q, &TopDocs::with_limit(1).order_by_score())?;
        Ok(hits.first().map(|(_, a)| *a))
    }

    /// Every chunk of a document, in chunk order.
    pub fn chunks_of(&self, doc_id: &str) -> Result<Vec<ChunkRecord>> {
        let q = TermQuery::new(
            Term::from_field_text(self.fields.doc_id, doc_id),
            IndexRecordOption::Basic,
        );
        let n = self.searcher.search(&q, &tantivy::collector::Count)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let hits = self.searcher.search(&q, &TopDocs::with_limit(n).order_by_score())?;
        let mut chunks =
            hits.into_iter().map(|(_, addr)| self.chunk(addr)).collect::<Result<Vec<_>>>()?;
        chunks.sort_by_key(|c| c.start);
        Ok(chunks)
    }

    /// The stored chunk at `addr`.
    pub fn chunk(&self, addr: DocAddress) -> Result<ChunkRecord> {
        let doc: TantivyDocument = self.searcher.doc(addr)?;
        let f = &self.fields;
        let text = |field: Field| {
            doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned()
        };
        let num = |field: Field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or_default();
        Ok(ChunkRecord {
            chunk_id: text(f.chunk_id),
            doc_id: text(f.doc_id),
            version: num(f.version),
            title: text(f.title),
            heading: text(f.heading),
            body: text(f.body),
            start: num(f.start),
            end: num(f.end),
            published_at: doc.get_first(f.published_at).and_then(|v| v.as_i64()),
            tags: doc.get_all(f.tags).filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            tenant: text(f.tenant),
        })
    }
}

/// One lexical field of a searcher as a [`Retriever`].
#[derive(Debug, Clone)]
pub struct LexicalRetriever {
    /// The point-in-time searcher.
    pub searcher: IndexSearcher,
    /// Which field it ranks by.
    pub field: LexicalField,
}

impl Retriever for LexicalRetriever {
    fn name(&self) -> &str {
        self.field.name()
    }

    fn retrieve(&self, query: &str, filters: &Filters, k: usize) -> Result<Vec<(u64, f32)>> {
        self.searcher
            .lexical(self.field, query, filters, k)?
            .into_iter()
            .map(|(addr, score)| Ok((self.searcher.key_of(addr)?, score)))
            .collect()
    }
}
