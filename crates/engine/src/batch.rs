//! The batched step: one forward pass advances several sequences at once, each by a chunk of tokens (a prompt
//! chunk during prefill, one token during decode). All tokens of the step go through the weight matrices
//! together, which is what makes continuous batching cheaper than serving requests one by one; attention
//! then reads each token's own sequence from the paged cache. The server's scheduler drives [`step`].

use std::collections::HashSet;

use candle_core::Tensor;

use crate::error::{EngineError, Result};
use crate::kv_cache::{KvCache, SeqId, Slot};
use crate::model::CausalLm;
use crate::moe::Routes;

/// Which logits a chunk wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsWanted {
    /// None (a prefill chunk that is not the last one).
    None,
    /// The last token's (to sample the next token).
    Last,
    /// Every token's (prompt logprobs, evaluation).
    All,
}

/// Part of a step: append `tokens` to sequence `seq`.
#[derive(Debug, Clone, Copy)]
pub struct SeqChunk<'a> {
    /// The sequence (from [`KvCache::add_sequence`] or [`KvCache::fork`]).
    pub seq: SeqId,
    /// Tokens to append; at least one.
    pub tokens: &'a [u32],
    /// Which logits to return.
    pub logits: LogitsWanted,
}

/// Logits returned for one chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkLogits {
    /// The sequence.
    pub seq: SeqId,
    /// Position of the chunk's first token in the sequence.
    pub first_position: usize,
    /// One row of `vocab_size` logits per requested token, in token order (`Last`: one row; `All`: one per token).
    pub rows: Vec<Vec<f32>>,
}

/// A step laid out for the model: all tokens flattened, with their positions and cache slots.
#[derive(Debug, Clone)]
pub struct StepBatch {
    /// Every token of the step, chunk after chunk.
    pub tokens: Vec<u32>,
    /// Each token's position in its sequence.
    pub positions: Vec<usize>,
    /// Each token's chunk (index into `seq_blocks`).
    pub token_seq: Vec<usize>,
    /// Each chunk's block table (after this step's reservation).
    pub seq_blocks: Vec<Vec<u32>>,
    /// Where each token's K/V are written.
    pub slots: Vec<Slot>,
    /// Indices into `tokens` whose logits the model returns, in order.
    pub logit_rows: Vec<usize>,
}

/// Advances every chunk's sequence by its tokens and returns the requested logits, one entry per chunk.
///
/// On error no sequence has grown: the cache is rolled back to its state before the call.
pub fn step(
    model: &dyn CausalLm,
    cache: &mut KvCache,
    chunks: &[SeqChunk<'_>],
) -> Result<Vec<ChunkLogits>> {
    run_step(model, cache, chunks, None)
}

/// [`step`] that also records the mixture-of-experts routing of every token (see [`CausalLm::forward_traced`]).
pub fn step_traced(
    model: &dyn CausalLm,
    cache: &mut KvCache,
    chunks: &[SeqChunk<'_>],
    routes: &mut Routes,
) -> Result<Vec<ChunkLogits>> {
    run_step(model, cache, chunks, Some(routes))
}

fn run_step(
    model: &dyn CausalLm,
    cache: &mut KvCache,
    chunks: &[SeqChunk<'_>],
    routes: Option<&mut Routes>,
) -> Result<Vec<ChunkLogits>> {
    let vocab = model.config().vocab_size;
    let mut seen = HashSet::new();
    for c in chunks {
        if c.tokens.is_empty() {
            return Err(EngineError::InvalidRequest(format!("empty chunk for sequence {}", c.seq)));
        }
        if !seen.insert(c.seq) {
            return Err(EngineError::InvalidRequest(format!(
                "sequence {} appears twice in one step",
                c.seq
            )));
        }
        if let Some(&bad) = c.tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::InvalidRequest(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
    }
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    let mut reserved: Vec<(SeqId, usize)> = Vec::with_capacity(chunks.len());
    let result = reserve_all(cache, chunks, &mut reserved).and_then(|starts| {
        let batch = layout(cache, chunks, &starts)?;
        let logits = match routes {
            Some(routes) => model.forward_traced(&batch, cache, routes)?,
            None => model.forward(&batch, cache)?,
        };
        split(chunks, &starts, &logits)
    });
    if result.is_err() {
        for (seq, len) in reserved {
            cache.truncate(seq, len)?;
        }
    }
    result
}

fn reserve_all(
    cache: &mut KvCache,
    chunks: &[SeqChunk<'_>],
    reserved: &mut Vec<(SeqId, usize)>,
) -> Result<Vec<usize>> {
    let mut starts = Vec::with_capacity(chunks.len());
    for c in chunks {
        let start = cache.reserve(c.seq, c.tokens.len())?;
        reserved.push((c.seq, start));
        starts.push(start);
    }
    Ok(starts)
}

fn layout(cache: &KvCache, chunks: &[SeqChunk<'_>], starts: &[usize]) -> Result<StepBatch> {
    let n: usize = chunks.iter().map(|c| c.tokens.len()).sum();
    let mut b = StepBatch {
        tokens: Vec::with_capacity(n),
        positions: Vec::with_capacity(n),
        token_seq: Vec::with_capacity(n),
        seq_blocks: Vec::with_capacity(chunks.len()),
        slots: Vec::with_capacity(n),
        logit_rows: Vec::new(),
    };
    for (i, (c, &start)) in chunks.iter().zip(starts).enumerate() {
        let blocks = cache.blocks(c.seq)?.to_vec();
        for (j, &t) in c.tokens.iter().enumerate() {
            let pos = start + j;
            let row = b.tokens.len();
            b.tokens.push(t);
            b.positions.push(pos);
            b.token_seq.push(i);
            b.slots.push(cache.slot(&blocks, pos));
            let wanted = match c.logits {
                LogitsWanted::None => false,
                LogitsWanted::Last => j + 1 == c.tokens.len(),
                LogitsWanted::All => true,
            };
            if wanted {
                b.logit_rows.push(row);
            }
        }
        b.seq_blocks.push(blocks);
    }
    Ok(b)
}

fn split(
    chunks: &[SeqChunk<'_>],
    starts: &[usize],
    logits: &Option<Tensor>,
) -> Result<Vec<ChunkLogits>> {
    let rows: Vec<Vec<f32>> = match logits {
        Some(t) => t.to_vec2::<f32>()?,
        None => Vec::new(),
    };
    let mut rows = rows.into_iter();
    let mut out = Vec::with_capacity(chunks.len());
    for (c, &start) in chunks.iter().zip(starts) {
        let n = match c.logits {
            LogitsWanted::None => 0,
            LogitsWanted::Last => 1,
            LogitsWanted::All => c.tokens.len(),
        };
        let mine: Vec<Vec<f32>> = rows.by_ref().take(n).collect();
        if mine.len() != n {
            return Err(EngineError::InvalidRequest(
                "model returned fewer logit rows than requested".to_owned(),
            ));
        }
        out.push(ChunkLogits { seq: c.seq, first_position: start, rows: mine });
    }
    Ok(out)
}
