//! Single-sequence generation on top of [`crate::batch::step`]: chunked prefill, then one token per step until
//! a stop token, the token budget or the caller says stop. The CLI and tests use it directly; the server's
//! scheduler interleaves many sequences with `step` itself and reuses the same sampler.

use std::time::{Duration, Instant};

use crate::batch::{LogitsWanted, SeqChunk, step};
use crate::error::{EngineError, Result};
use crate::kv_cache::KvCache;
use crate::model::CausalLm;
use crate::sampling::{Sampled, Sampler};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest<'a> {
    /// The prompt's token ids (at least one).
    pub prompt: &'a [u32],
    /// Stop after this many new tokens.
    pub max_tokens: usize,
    /// Tokens that end generation (not passed to the callback's output).
    pub stop_tokens: &'a [u32],
    /// Prompt tokens per prefill step: bounds activation memory for long prompts.
    pub prefill_chunk: usize,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was sampled, or the callback asked to stop (e.g. a stop string).
    Stop,
    /// `max_tokens` were generated, or the context is full.
    Length,
}

/// Counts and timings of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateStats {
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// Tokens generated (including a final stop token).
    pub generated_tokens: usize,
    /// Wall time of the prefill, including sampling the first token.
    pub prefill_time: Duration,
    /// Wall time of the decode steps.
    pub decode_time: Duration,
    /// Why it ended.
    pub finish: FinishReason,
}

/// Generates into a fresh sequence of `cache` (freed afterwards). `on_token` sees every sampled token that is
/// not a stop token and returns `false` to stop.
pub fn generate(
    model: &dyn CausalLm,
    cache: &mut KvCache,
    sampler: &mut Sampler,
    req: &GenerateRequest<'_>,
    mut on_token: impl FnMut(&Sampled) -> bool,
) -> Result<GenerateStats> {
    if req.prompt.is_empty() {
        return Err(EngineError::InvalidRequest("the prompt is empty".to_owned()));
    }
    if req.prompt.len() > cache.max_context() {
        return Err(EngineError::ContextLength {
            needed: req.prompt.len(),
            max: cache.max_context(),
        });
    }
    let seq = cache.add_sequence();
    let result = run(model, cache, sampler, req, seq, &mut on_token);
    cache.free_sequence(seq)?;
    result
}

fn run(
    model: &dyn CausalLm,
    cache: &mut KvCache,
    sampler: &mut Sampler,
    req: &GenerateRequest<'_>,
    seq: u64,
    on_token: &mut impl FnMut(&Sampled) -> bool,
) -> Result<GenerateStats> {
    let start = Instant::now();
    let chunk = req.prefill_chunk.max(1);
    let mut logits = Vec::new();
    let n_chunks = req.prompt.len().div_ceil(chunk);
    for (i, part) in req.prompt.chunks(chunk).enumerate() {
        let wanted = if i + 1 == n_chunks { LogitsWanted::Last } else { LogitsWanted::None };
        let out = step(model, cache, &[SeqChunk { seq, tokens: part, logits: wanted }])?;
        if let Some(row) = out.into_iter().next().and_then(|c| c.rows.into_iter().next()) {
            logits = row;
        }
    }
    let mut generated: Vec<u32> = Vec::new();
    let mut prefill_time = Duration::ZERO;
    let mut finish = FinishReason::Length;
    while generated.len() < req.max_tokens {
        let sampled = sampler.sample(&logits, req.prompt, &generated)?;
        generated.push(sampled.token);
        if generated.len() == 1 {
            prefill_time = start.elapsed();
        }
        if req.stop_tokens.contains(&sampled.token) || !on_token(&sampled) {
            finish = FinishReason::Stop;
            break;
        }
        if generated.len() == req.max_tokens
            || req.prompt.len() + generated.len() >= cache.max_context()
        {
            break;
        }
        let token = [sampled.token];
        let out =
            step(model, cache, &[SeqChunk { seq, tokens: &token, logits: LogitsWanted::Last }])?;
        logits = out.into_iter().next().and_then(|c| c.rows.into_iter().next()).unwrap_or_default();
    }
    if generated.is_empty() {
        prefill_time = start.elapsed();
    }
    Ok(GenerateStats {
        prompt_tokens: req.prompt.len(),
        generated_tokens: generated.len(),
        prefill_time,
        decode_time: start.elapsed().saturating_sub(prefill_time),
        finish,
    })
}
