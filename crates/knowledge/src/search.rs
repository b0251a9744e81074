//! Hybrid search: every retriever (the two lexical fields, and any extra one such as a vector index)
//! returns a ranked list; the lists are fused by weighted RRF, the best candidates are loaded, an
//! optional freshness boost re-orders them, and the top k come back with their citation data.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{
    Result,
    fusion::{Fuser, RankedList, freshness_multiplier},
    index::{ChunkRecord, Filters, IndexSearcher, LexicalField, Retriever, ScoredChunk},
    tokenize::strip_question_words,
};

/// Boost recent chunks: see [`freshness_multiplier`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    /// Extra weight a chunk published now gets (0 = off).
    pub weight: f64,
    /// Age in days at which the boost halves.
    pub half_life_days: f64,
    /// "Now" in unix seconds (explicit so results are reproducible).
    pub now: i64,
}

/// How a query is run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchOptions {
    /// Weight of the jieba list in the fusion.
    pub jieba_weight: f32,
    /// Weight of the character-bigram list in the fusion.
    pub bigram_weight: f32,
    /// Weight of the vector list in the fusion (used when the knowledge base has an embedding model).
    #[serde(default = "one")]
    pub vector_weight: f32,
    /// Candidates taken from each list before fusion.
    pub depth: usize,
    /// The fusion rule.
    pub fuser: Fuser,
    /// Optional recency boost.
    pub freshness: Option<Freshness>,
    /// Blank out interrogative words (什么, 哪一年…) before lexical matching.
    pub strip_question_words: bool,
    /// Lexical query terms found in more than this share of the chunks are left out (1 keeps all): their
    /// BM25 weight is near zero but their posting lists dominate query time. On CMRC 2018 at 100k chunks,
    /// 0.2 halves the jieba list's time and leaves R@10 unchanged.
    #[serde(default = "common_term_share")]
    pub common_term_share: f32,
    /// Small-to-big: match the (small) chunks, return their parent chunks — the larger span of the
    /// section around them, verbatim from the stored text, so a citation of it checks like any other.
    /// Several hits in one parent become one result.
    #[serde(default)]
    pub parents: bool,
}

fn one() -> f32 {
    1.0
}

fn common_term_share() -> f32 {
    0.2
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            jieba_weight: 1.0,
            bigram_weight: 1.0,
            vector_weight: 1.0,
            depth: 50,
            fuser: Fuser::default(),
            freshness: None,
            strip_question_words: true,
            common_term_share: common_term_share(),
            parents: false,
        }
    }
}

/// Runs the lexical retrievers plus `extra` ones (with their weights), fuses, and loads the top `k`.
/// Every list with a positive weight takes part; an extra retriever's failure (e.g. the embedder) is an
/// error, never a silently lexical-only answer.
pub fn hybrid_search(
    searcher: &IndexSearcher,
    extra: &[(&dyn Retriever, f32)],
    query: &str,
    filters: &Filters,
    k: usize,
    options: &SearchOptions,
) -> Result<Vec<ScoredChunk>> {
    let lexical_query = lexical_query(query, options);
    let mut addresses = HashMap::new();
    let mut lists = Vec::new();
    for (field, weight) in
        [(LexicalField::Jieba, options.jieba_weight), (LexicalField::Bigram, options.bigram_weight)]
    {
        if weight <= 0.0 {
            continue;
        }
        let mut items = Vec::new();
        for (addr, score) in searcher.lexical_pruned(
            field,
            &lexical_query,
            filters,
            options.depth,
            options.common_term_share,
        )? {
            let key = searcher.key_of(addr)?;
            addresses.insert(key, addr);
            items.push((key, score));
        }
        lists.push(RankedList { name: field.name().to_owned(), weight, items });
    }
    for (retriever, weight) in extra {
        if *weight <= 0.0 {
            continue;
        }
        let items = retriever.retrieve(query, filters, options.depth)?;
        lists.push(RankedList { name: retriever.name().to_owned(), weight: *weight, items });
    }
    fuse_and_load(&lists, k, options, &mut |key| {
        let addr = match addresses.get(&key) {
            Some(addr) => *addr,
            None => match searcher.address_of(key)? {
                Some(addr) => addr,
                None => return Ok(None),
            },
        };
        searcher.chunk(addr).map(Some)
    })
}

/// The text lexical retrievers match: the query, with interrogative words blanked out when asked.
pub fn lexical_query<'a>(query: &'a str, options: &SearchOptions) -> std::borrow::Cow<'a, str> {
    if options.strip_question_words {
        std::borrow::Cow::Owned(strip_question_words(query))
    } else {
        std::borrow::Cow::Borrowed(query)
    }
}

/// Fuses ranked `lists` by the options' rule, loads the best candidates with `load` (a key that no longer
/// resolves is skipped), applies the freshness boost, and returns the top `k` — the part of a search
/// every backend shares.
pub fn fuse_and_load(
    lists: &[RankedList],
    k: usize,
    options: &SearchOptions,
    load: &mut dyn FnMut(u64) -> Result<Option<ChunkRecord>>,
) -> Result<Vec<ScoredChunk>> {
    let fused = options.fuser.fuse(lists);
    // With a freshness boost, a lower-ranked recent chunk can overtake, so load more candidates.
    let load_n = if options.freshness.is_some() { (k * 4).max(k) } else { k };
    let mut out = Vec::with_capacity(load_n.min(fused.len()));
    for (key, score) in fused.into_iter().take(load_n) {
        let Some(chunk) = load(key)? else { continue };
        let score = match (&options.freshness, chunk.published_at) {
            (Some(f), Some(at)) => {
                let age_days = (f.now - at) as f64 / 86_400.0;
                (f64::from(score) * freshness_multiplier(age_days, f.weight, f.half_life_days))
                    as f32
            }
            _ => score,
        };
        out.push(ScoredChunk { score, chunk });
    }
    out.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then_with(|| a.chunk.chunk_id.cmp(&b.chunk.chunk_id))
    });
    out.truncate(k);
    Ok(out)
}
