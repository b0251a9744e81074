//! `finllm models`: the models in the data directory (what `finllm pull` fetched), and the helpers every
//! command with `--model` shares: resolving a name or path, and loading a model with its tokenizer and a
//! KV cache sized for the requested context.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use engine::catalog::{self, Format, LocalModel};
use engine::kv_cache::{KvCache, KvCacheConfig};
use engine::model::{LoadOptions, LoadedModel, load};
use engine::tokenizer::{Tokenizer, TokenizerError};

use crate::config::Config;

/// Arguments of `finllm models`.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    /// Print a JSON array instead of a table
    #[arg(long)]
    json: bool,
}

/// Lists the models under `<data_dir>/models`.
pub fn run(args: &ModelsArgs, config: &Config) -> anyhow::Result<()> {
    let models = catalog::scan(&config.data_dir);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &models)?;
        writeln!(out)?;
        return Ok(());
    }
    if models.is_empty() {
        writeln!(
            out,
            "no models in {} (get one with `finllm pull OWNER/NAME[:QUANT]`)",
            catalog::models_dir(&config.data_dir).display()
        )?;
        return Ok(());
    }
    let width = models.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:<width$}  {:<11}  {:<8}  {:<8}  {:>9}  PATH",
        "NAME", "FORMAT", "ARCH", "QUANT", "SIZE"
    )?;
    for m in &models {
        writeln!(out, "{}", row(m, width))?;
    }
    Ok(())
}

fn row(m: &LocalModel, width: usize) -> String {
    let format = match m.format {
        Format::Gguf => "gguf",
        Format::Safetensors => "safetensors",
    };
    let mut line = format!(
        "{:<width$}  {:<11}  {:<8}  {:<8}  {:>9}  {}",
        m.name,
        format,
        m.architecture.as_deref().unwrap_or("?"),
        m.quant.as_deref().unwrap_or("?"),
        human_size(m.size_bytes),
        m.path.display()
    );
    if let Some(problem) = &m.problem {
        line.push_str(&format!("  (unreadable: {problem})"));
    }
    line
}

/// Bytes as `12.3 MiB`.
pub fn human_size(bytes: u64) -> String {
    let mut value = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024.0 || unit == "GiB" {
            return if unit == "B" { format!("{bytes} B") } else { format!("{value:.1} {unit}") };
        }
        value /= 1024.0;
    }
    format!("{bytes} B")
}

/// Resolves `--model`: a path, or a name that `finllm models` lists.
pub fn resolve(config: &Config, model: &str) -> anyhow::Result<PathBuf> {
    Ok(catalog::resolve(&config.data_dir, model)?)
}

/// Resolves and loads `--model` (with warm-up).
pub fn load_model(config: &Config, model: &str) -> anyhow::Result<LoadedModel> {
    let path = resolve(config, model)?;
    load(&path, &LoadOptions { warm_up: true })
        .with_context(|| format!("loading {}", path.display()))
}

/// The model's own tokenizer: GGUF metadata or `tokenizer.json` (`None` for a folder without one).
pub fn load_tokenizer(loaded: &LoadedModel) -> Result<Option<Tokenizer>, TokenizerError> {
    match (&loaded.gguf, &loaded.hf_dir) {
        (Some(g), _) => Tokenizer::from_gguf(g.content()).map(Some),
        (None, Some(dir)) if dir.join("tokenizer.json").exists() => {
            Tokenizer::from_hf_dir(dir).map(Some)
        }
        _ => Ok(None),
    }
}

/// A one-user KV cache holding `ctx` tokens (the model's window when `None`, at most `default_cap`).
pub fn cache_for(
    loaded: &LoadedModel,
    ctx: Option<usize>,
    default_cap: usize,
) -> anyhow::Result<KvCache> {
    let cfg = loaded.model.config();
    let ctx = ctx.unwrap_or(cfg.max_position.min(default_cap));
    Ok(KvCache::new(
        cfg,
        &KvCacheConfig {
            block_size: 32,
            max_bytes: KvCache::bytes_per_token(cfg) * ctx.div_ceil(32) * 32,
            max_context: ctx,
        },
    )?)
}
