//! The knowledge pipeline: models learn from static data and cannot take in new, time-sensitive or
//! proprietary knowledge, so finllm ingests documents, cleans and chunks them, indexes them on disk and
//! retrieves scored, citable chunks for them.
//!
//! Layers, bottom up: [`encoding`], [`parse`] and [`office`] (DOCX, PDF) turn files into text; [`clean`] is the data-juicer-style
//! corpus pipeline; [`chunk`] cuts Chinese and English text at sentence ends; [`tokenize`] holds the jieba
//! (search mode, finance dictionary) and character-bigram analyzers; [`index`] is the tantivy BM25 index
//! and [`fusion`] the weighted reciprocal-rank fuser, combined by [`search`]; [`store`] keeps document records in SQLite; [`kb`]
//! ties them into one knowledge base in a directory, and [`pg`] keeps one in PostgreSQL with pgvector
//! behind the same [`KnowledgeStore`] trait; [`eval`] measures retrieval on CMRC 2018.
//! [`embed`] runs a BERT-family sentence encoder in-process ([`upstream`] asks an OpenAI-compatible
//! `/v1/embeddings` endpoint instead) and [`vectors`] keeps the chunk vectors (searched
//! through the [`hnsw`] graph), the third list in the fusion when a model is attached. [`cite`] builds grounded-answer prompts and checks
//! every citation in a model's answer against the stored sources.

pub mod chunk;
pub mod cite;
pub mod clean;
pub mod embed;
pub mod encoding;
pub mod eval;
pub mod fusion;
pub mod hnsw;
pub mod index;
pub mod kb;
pub mod office;
pub mod parse;
pub mod pg;
pub mod search;
pub mod store;
pub mod tokenize;
pub mod upstream;
pub mod vectors;

pub use chunk::{Chunk, ChunkConfig, chunk_text};
pub use embed::{BertEmbedder, Embedder};
pub use fusion::{Fuser, RankedList};
pub use index::{Filters, LexicalField, ScoredChunk};
pub use kb::{AddOptions, IngestReport, KnowledgeBase, KnowledgeStore, SearchRequest};
pub use search::{SearchOptions, hybrid_search};

use types::{Code, ErrorCode};

/// Everything that can go wrong in the knowledge pipeline.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// What was being read or written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The tantivy index failed.
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The SQLite document store failed.
    #[error("document store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The input is not what the format promised (bad JSON, unknown format, undecodable bytes).
    #[error("{0}")]
    BadInput(String),
    /// The PostgreSQL knowledge base failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No document with this id.
    #[error("no document with id {0}")]
    NotFound(String),
}

impl KnowledgeError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        KnowledgeError::Io { path: path.as_ref().display().to_string(), source }
    }
}

impl ErrorCode for KnowledgeError {
    fn error_code(&self) -> Code {
        match self {
            KnowledgeError::Io { .. }
            | KnowledgeError::Index(_)
            | KnowledgeError::Store(_)
            | KnowledgeError::Postgres(_) => Code::StorageError,
            KnowledgeError::BadInput(_) => Code::UnsupportedFormat,
            KnowledgeError::NotFound(_) => Code::NotFound,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = KnowledgeError> = std::result::Result<T, E>;
