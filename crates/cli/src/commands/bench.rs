//! `finllm bench`: prefill and decode speed of a local model at chosen context depths, through the engine's
//! public step API (the path the server uses). For each depth the context is prefilled once; each round
//! forks it (sharing the cached prefix), times the prefill of a fresh prompt on top of it, then times greedy
//! decoding. Token ids are seeded pseudo-random: speed does not depend on what the tokens say.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use engine::batch::{LogitsWanted, SeqChunk, step};
use engine::kv_cache::{KvCache, SeqId};
use engine::model::CausalLm;
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::models::{cache_for, load_model};
use crate::config::Config;

/// Arguments of `finllm bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A .gguf file, a Hugging Face folder or a name from `finllm models`
    #[arg(long, value_name = "MODEL")]
    model: String,
    /// Context depths (tokens already in the cache) to measure at
    #[arg(long, value_delimiter = ',', default_value = "0,512,2048")]
    depths: Vec<usize>,
    /// Prompt tokens prefilled (and timed) at each depth
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens decoded (and timed) after the prompt
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// Rounds per depth; the median is reported
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Prompt tokens per prefill step
    #[arg(long, default_value_t = 512)]
    prefill_chunk: usize,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

/// One depth's measurements.
#[derive(Debug, serde::Serialize)]
struct DepthResult {
    depth: usize,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
    prefill_rounds: Vec<f64>,
    decode_rounds: Vec<f64>,
}

/// Runs the benchmark and prints a table or JSON.
pub fn run(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    if args.prompt_tokens == 0 || args.gen_tokens == 0 || args.rounds == 0 {
        anyhow::bail!("--prompt-tokens, --gen-tokens and --rounds must be at least 1");
    }
    let loaded = load_model(config, &args.model)?;
    let model = loaded.model.as_ref();
    let cfg = model.config();
    let deepest = args.depths.iter().copied().max().unwrap_or(0);
    let needed = deepest + args.prompt_tokens + args.gen_tokens;
    if needed > cfg.max_position {
        anyhow::bail!(
            "depth {deepest} + {} prompt + {} generated tokens = {needed} exceeds the model's context \
             window of {} tokens",
            args.prompt_tokens,
            args.gen_tokens,
            cfg.max_position
        );
    }
    // Room for the shared prefix plus one forked round (and a partly shared block).
    let mut cache = cache_for(&loaded, Some(needed + 64), needed + 64)?;
    let bar = ProgressBar::new((args.depths.len() * args.rounds) as u64).with_style(
        ProgressStyle::with_template("bench {bar:30} {pos}/{len} rounds, depth {msg}")?,
    );
    let mut tokens = TokenStream::new(cfg.vocab_size);
    let mut results = Vec::new();
    for &depth in &args.depths {
        bar.set_message(depth.to_string());
        let base = cache.add_sequence();
        let context = tokens.take(depth);
        for part in context.chunks(args.prefill_chunk.max(1)) {
            step(
                model,
                &mut cache,
                &[SeqChunk { seq: base, tokens: part, logits: LogitsWanted::None }],
            )
            .with_context(|| format!("prefilling the depth-{depth} context"))?;
        }
        let (mut prefill, mut decode) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            let seq = cache.fork(base, depth)?;
            let prompt = tokens.take(args.prompt_tokens);
            let round =
                time_round(model, &mut cache, seq, &prompt, args.gen_tokens, args.prefill_chunk);
            cache.free_sequence(seq)?;
            let (p, d) = round?;
            prefill.push(args.prompt_tokens as f64 / p.as_secs_f64().max(1e-9));
            decode.push(args.gen_tokens as f64 / d.as_secs_f64().max(1e-9));
            bar.inc(1);
        }
        cache.free_sequence(base)?;
        results.push(DepthResult {
            depth,
            prefill_tokens_per_s: median(&prefill),
            decode_tokens_per_s: median(&decode),
            prefill_rounds: prefill,
            decode_rounds: decode,
        });
    }
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({
            "model": args.model,
            "architecture": cfg.arch.gguf_name(),
            "prompt_tokens": args.prompt_tokens,
            "gen_tokens": args.gen_tokens,
            "rounds": args.rounds,
            "cpus": cpus(),
            "results": results,
            "resident_bytes": proc_status_bytes("VmRSS"),
            "peak_resident_bytes": proc_status_bytes("VmHWM"),
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{:>8}  {:>18}  {:>17}", "depth", "prefill tok/s", "decode tok/s")?;
        for r in &results {
            writeln!(
                out,
                "{:>8}  {:>18.1}  {:>17.1}",
                r.depth, r.prefill_tokens_per_s, r.decode_tokens_per_s
            )?;
        }
        writeln!(
            out,
            "({} prompt tokens, {} generated, median of {} rounds, {} CPUs)",
            args.prompt_tokens,
            args.gen_tokens,
            args.rounds,
            cpus()
        )?;
    }
    Ok(())
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS`: resident now; `VmHWM`: the peak), in
/// bytes; `None` where the file does not exist (not Linux).
fn proc_status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    let kib: u64 = line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Prefills `prompt` into `seq`, then decodes `gen` tokens greedily; returns both durations.
fn time_round(
    model: &dyn CausalLm,
    cache: &mut KvCache,
    seq: SeqId,
    prompt: &[u32],
    gen_tokens: usize,
    chunk: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let start = Instant::now();
    let mut logits = Vec::new();
    let n_chunks = prompt.len().div_ceil(chunk.max(1));
    for (i, part) in prompt.chunks(chunk.max(1)).enumerate() {
        let wanted = if i + 1 == n_chunks { LogitsWanted::Last } else { LogitsWanted::None };
        let out = step(model, cache, &[SeqChunk { seq, tokens: part, logits: wanted }])?;
        if let Some(row) = out.into_iter().next().and_then(|c| c.rows.into_iter().next()) {
            logits = row;
        }
    }
    let prefill = start.elapsed();
    let start = Instant::now();
    for _ in 0..gen_tokens {
        let token = [argmax(&logits)];
        let out =
            step(model, cache, &[SeqChunk { seq, tokens: &token, logits: LogitsWanted::Last }])?;
        logits = out.into_iter().next().and_then(|c| c.rows.into_iter().next()).unwrap_or_default();
    }
    Ok((prefill, start.elapsed()))
}

fn argmax(logits: &[f32]) -> u32 {
    let best = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
    u32::try_from(best).unwrap_or(0)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Seeded pseudo-random token ids (xorshift), away from the low ids where special tokens usually sit.
struct TokenStream {
    state: u64,
    vocab: usize,
}

impl TokenStream {
    fn new(vocab: usize) -> TokenStream {
        TokenStream { state: 0x9e37_79b9_7f4a_7c15, vocab: vocab.max(1) }
    }

    fn take(&mut self, n: usize) -> Vec<u32> {
        let low = (self.vocab / 16).min(256);
        (0..n)
            .map(|_| {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                let span = (self.vocab - low).max(1) as u64;
                u32::try_from(low as u64 + self.state % span).unwrap_or(0)
            })
            .collect()
    }
}
