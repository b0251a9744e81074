//! `finllm generate`: continue a raw prompt (no chat template) with a local model, streaming the text to
//! stdout and the prefill/decode speed to stderr. The quickest end-to-end check of a model file.

use std::io::Write;

use anyhow::Context;
use engine::generate::{GenerateRequest, generate};
use engine::sampling::{Sampler, SamplingParams, StopMatcher};
use engine::tokenizer::StreamDecoder;

use crate::commands::models::{cache_for, load_model, load_tokenizer};
use crate::config::Config;

/// Arguments of `finllm generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A .gguf file, a Hugging Face folder (config.json + safetensors) or a name from `finllm models`
    #[arg(long, value_name = "MODEL")]
    model: String,
    /// The text to continue
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present = "prompt_ids",
        conflicts_with = "prompt_ids"
    )]
    prompt: Option<String>,
    /// The prompt as comma-separated token ids (bypasses the tokenizer)
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// Generate at most this many tokens
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Keep only the K most likely tokens (0: off)
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Nucleus sampling mass (1: off)
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Drop tokens below this share of the best one's probability (0: off)
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Penalise tokens already in the prompt or output (1: off)
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Random seed (same seed, same output)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop before this text (repeatable)
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Context window to allocate the KV cache for [default: the model's, at most 8192]
    #[arg(long, value_name = "TOKENS")]
    ctx: Option<usize>,
    /// Prompt tokens per prefill step
    #[arg(long, default_value_t = 512)]
    prefill_chunk: usize,
}

/// Loads the model, generates, streams.
#[allow(clippy::print_stderr, reason = "speed statistics go to stderr, the text to stdout")]
pub fn run(args: &GenerateArgs, config: &Config) -> anyhow::Result<()> {
    let loaded = load_model(config, &args.model)?;
    let cfg = loaded.model.config().clone();
    let tokenizer = match load_tokenizer(&loaded) {
        Ok(t) => t,
        Err(e) if args.prompt.is_none() => {
            tracing::warn!("no usable tokenizer ({e}); printing token ids");
            None
        }
        Err(e) => return Err(e).context("loading the model's tokenizer"),
    };
    let prompt: Vec<u32> = match (&args.prompt, &args.prompt_ids, &tokenizer) {
        (_, Some(ids), _) => ids.clone(),
        (Some(text), None, Some(tok)) => tok.encode(text, true)?,
        _ => anyhow::bail!("the model has no tokenizer: pass --prompt-ids"),
    };
    let mut cache = cache_for(&loaded, args.ctx, 8192)?;
    let mut sampler = Sampler::new(SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repetition_penalty: args.repeat_penalty,
        seed: args.seed,
        ..SamplingParams::greedy()
    })?;
    let mut stop_tokens = cfg.eos_token_ids.clone();
    if let Some(tok) = &tokenizer {
        stop_tokens.extend_from_slice(tok.eos_ids());
    }
    let mut out = std::io::stdout().lock();
    let mut decoder = StreamDecoder::after_prompt().skip_special(true);
    let mut stops = StopMatcher::new(&args.stop);
    let req = GenerateRequest {
        prompt: &prompt,
        max_tokens: args.max_tokens,
        stop_tokens: &stop_tokens,
        prefill_chunk: args.prefill_chunk,
    };
    let mut failure: Option<anyhow::Error> = None;
    let stats = generate(loaded.model.as_ref(), &mut cache, &mut sampler, &req, |s| {
        let piece = match &tokenizer {
            Some(tok) => match decoder.push(tok, s.token) {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e.into());
                    return false;
                }
            },
            None => format!("{} ", s.token),
        };
        let o = stops.push(&piece);
        if let Err(e) = out.write_all(o.emit.as_bytes()).and_then(|()| out.flush()) {
            failure = Some(e.into());
            return false;
        }
        !o.stopped
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let mut tail = decoder.finish();
    if !tail.is_empty() {
        tail = stops.push(&tail).emit;
    }
    tail.push_str(&stops.finish());
    writeln!(out, "{tail}")?;
    let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let decoded = stats.generated_tokens.saturating_sub(1);
    eprintln!(
        "prefill: {} tokens in {:.3} s ({:.1} tok/s); decode: {} tokens in {:.3} s ({:.1} tok/s); finish: {:?}",
        stats.prompt_tokens,
        stats.prefill_time.as_secs_f64(),
        rate(stats.prompt_tokens, stats.prefill_time),
        decoded,
        stats.decode_time.as_secs_f64(),
        rate(decoded, stats.decode_time),
        stats.finish,
    );
    Ok(())
}
