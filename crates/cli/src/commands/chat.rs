//! `finllm chat`: talk to a local model in the terminal. Each line on stdin is a user turn; the whole history
//! goes through the model's own chat template, and the answer streams to stdout as it is generated.
//! `/reset` forgets the history, `/exit` (or end of input) quits. When the history outgrows the context
//! window the oldest turns are dropped (the system prompt is kept).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use engine::chat_template::{ChatMessage, ChatTemplate};
use engine::generate::{GenerateRequest, generate};
use engine::model::LoadedModel;
use engine::sampling::{Sampler, SamplingParams};
use engine::tokenizer::{StreamDecoder, Tokenizer};

use crate::commands::models::{cache_for, load_model, load_tokenizer};
use crate::config::Config;

/// Arguments of `finllm chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// A .gguf file, a Hugging Face folder or a name from `finllm models`
    #[arg(long, value_name = "MODEL")]
    model: String,
    /// A system prompt that starts the conversation
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Longest answer, in tokens
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Nucleus sampling mass (1: off)
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// Random seed (same seed and input, same conversation)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Context window to allocate [default: the model's, at most 8192]
    #[arg(long, value_name = "TOKENS")]
    ctx: Option<usize>,
}

/// The model's chat template: its own (GGUF metadata or tokenizer_config.json), else a built-in one.
fn load_template(loaded: &LoadedModel) -> anyhow::Result<ChatTemplate> {
    match (&loaded.gguf, &loaded.hf_dir) {
        (Some(g), _) => Ok(ChatTemplate::from_gguf(g.content())?),
        (None, Some(dir)) => Ok(ChatTemplate::from_hf_dir(dir)?),
        (None, None) => anyhow::bail!("the model came with no tokenizer metadata"),
    }
}

/// The REPL.
#[allow(clippy::print_stderr, reason = "the prompt and statistics go to stderr, answers to stdout")]
pub fn run(args: &ChatArgs, config: &Config) -> anyhow::Result<()> {
    let loaded = load_model(config, &args.model)?;
    let tokenizer = load_tokenizer(&loaded)
        .context("loading the model's tokenizer")?
        .context("the model has no tokenizer (tokenizer.json), which chat needs")?;
    let template = load_template(&loaded).context("loading the model's chat template")?;
    let mut cache = cache_for(&loaded, args.ctx, 8192)?;
    let mut sampler = Sampler::new(SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        ..SamplingParams::greedy()
    })?;
    let mut stop_tokens = loaded.model.config().eos_token_ids.clone();
    stop_tokens.extend_from_slice(tokenizer.eos_ids());
    let system: Vec<ChatMessage> =
        args.system.iter().map(|s| ChatMessage::new("system", s.clone())).collect();
    let mut history = system.clone();
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("chatting with {} (/reset forgets the conversation, /exit quits)", args.model);
    }
    let mut out = std::io::stdout().lock();
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let text = line.trim();
        match text {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.clone_from(&system);
                eprintln!("[conversation reset]");
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage::new("user", text));
        let budget =
            cache.max_context().saturating_sub(args.max_tokens.min(cache.max_context() / 2));
        let prompt = match fit_prompt(&template, &tokenizer, &mut history, system.len(), budget) {
            Ok(p) => p,
            Err(e) => {
                history.pop();
                eprintln!("error: {e:#}");
                continue;
            }
        };
        let mut decoder = StreamDecoder::after_prompt().skip_special(true);
        let mut reply = String::new();
        let mut failure: Option<anyhow::Error> = None;
        let req = GenerateRequest {
            prompt: &prompt,
            max_tokens: args.max_tokens,
            stop_tokens: &stop_tokens,
            prefill_chunk: 512,
        };
        let stats = generate(loaded.model.as_ref(), &mut cache, &mut sampler, &req, |s| {
            let piece = match decoder.push(&tokenizer, s.token) {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e.into());
                    return false;
                }
            };
            reply.push_str(&piece);
            if let Err(e) = out.write_all(piece.as_bytes()).and_then(|()| out.flush()) {
                failure = Some(e.into());
                return false;
            }
            true
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let tail = decoder.finish();
        reply.push_str(&tail);
        writeln!(out, "{tail}")?;
        history.push(ChatMessage::new("assistant", reply));
        let decode_rate = stats.generated_tokens.saturating_sub(1) as f64
            / stats.decode_time.as_secs_f64().max(1e-9);
        eprintln!(
            "[{} prompt tokens, {} generated, {:.1} tok/s]",
            stats.prompt_tokens, stats.generated_tokens, decode_rate
        );
    }
    Ok(())
}

/// Renders and encodes the history, dropping the oldest turns after the system prompt until it fits `budget`.
fn fit_prompt(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    history: &mut Vec<ChatMessage>,
    keep: usize,
    budget: usize,
) -> anyhow::Result<Vec<u32>> {
    loop {
        let rendered = template.render(history, None, true)?;
        let ids = tokenizer.encode_chat(&rendered)?;
        if ids.len() <= budget {
            return Ok(ids);
        }
        if history.len() <= keep + 1 {
            anyhow::bail!(
                "this message takes {} tokens with the chat template, more than the {budget} the context \
                 window leaves (raise --ctx or lower --max-tokens)",
                ids.len()
            );
        }
        history.remove(keep);
    }
}
