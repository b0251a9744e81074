//! `cargo xtask bench-engine`: the engine's speed against llama.cpp, side by side on the same files, in one
//! command (issues 3 and 4). It makes random-weight models of real shapes (`scripts/bench-engine/make_models.py`:
//! Qwen2.5-0.5B at Q8_0, Qwen2.5-1.5B at Q4_K_M, quantized by llama.cpp; on request Ling-mini-2.0 (Bailing MoE
//! v2) and a Llama-3-8B shape at Q4_K_M, written block by block), measures the machine's memory read
//! bandwidth, then alternates `finllm bench --json` and `scripts/bench-engine/llama_cpp_bench.py` (the same
//! measurement through llama-cpp-python) for several rounds at short context, runs both once after a long
//! prompt, and prints the ratios with every decode figure as a share of the bandwidth roofline (weight bytes
//! plus KV-cache bytes read per token; for MoE models the routed experts' share a token uses) and each engine's
//! resident memory. The JSON goes to `target/bench-engine.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Options (`--rounds N`, `--threads N`, `--long N`, `--models a,b`, `--models-dir D`, `--finllm PATH`).
#[derive(Debug)]
struct Options {
    rounds: usize,
    threads: usize,
    long: usize,
    models: Vec<String>,
    models_dir: PathBuf,
    finllm: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options {
        rounds: 3,
        threads: 2,
        long: 16_384,
        models: vec!["qwen05-q8_0".to_owned(), "qwen15-q4_k_m".to_owned()],
        models_dir: root().join("target/bench-models"),
        finllm: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rounds" => o.rounds = value()?.parse()?,
            "--threads" => o.threads = value()?.parse()?,
            "--long" => o.long = value()?.parse()?,
            "--models" => o.models = value()?.split(',').map(str::to_owned).collect(),
            "--models-dir" => o.models_dir = PathBuf::from(value()?),
            "--finllm" => o.finllm = Some(PathBuf::from(value()?)),
            other => bail!(
                "unknown option {other}; usage: cargo xtask bench-engine [--rounds N] [--threads N] \
                 [--long TOKENS (0 = skip)] [--models qwen05-q8_0,qwen15-q4_k_m,ling-mini-q4_k_m,dense-8b-q4_k_m] \
                 [--models-dir D] [--finllm PATH]"
            ),
        }
    }
    Ok(o)
}

/// Sequential read bandwidth with `threads` threads over 1 GiB, best of three passes, in bytes/s.
fn read_bandwidth(threads: usize) -> f64 {
    let words = (1usize << 30) / 8;
    let data: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads.max(1));
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let sum: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = data
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().fold(0u64, |a, &b| a.wrapping_add(b))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).fold(0, u64::wrapping_add)
        });
        std::hint::black_box(sum);
        best = best.max((words * 8) as f64 / start.elapsed().as_secs_f64());
    }
    best
}

fn run_json(command: &mut Command, what: &str) -> anyhow::Result<Value> {
    let out = command.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{what} printed no JSON"))
}

/// One engine's figures at one depth: `(prefill tok/s, decode tok/s)`.
fn figures(doc: &Value) -> Vec<(u64, f64, f64)> {
    doc["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    (
                        r["depth"].as_u64().unwrap_or(0),
                        r["prefill_tokens_per_s"].as_f64().unwrap_or(0.0),
                        r["decode_tokens_per_s"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

struct Pair<'a> {
    finllm: &'a Path,
    model: &'a Path,
    threads: usize,
}

impl Pair<'_> {
    fn finllm(&self, depths: &str, prompt: usize, gen_tokens: usize) -> anyhow::Result<Value> {
        run_json(
            Command::new(self.finllm)
                .args(["bench", "--json", "--rounds", "1", "--depths", depths])
                .args([
                    "--prompt-tokens",
                    &prompt.to_string(),
                    "--gen-tokens",
                    &gen_tokens.to_string(),
                ])
                .arg("--model")
                .arg(self.model)
                .env("RAYON_NUM_THREADS", self.threads.to_string()),
            "finllm bench",
        )
    }

    fn llama_cpp(&self, depths: &str, prompt: usize, gen_tokens: usize) -> anyhow::Result<Value> {
        run_json(
            Command::new("python3")
                .arg(root().join("scripts/bench-engine/llama_cpp_bench.py"))
                .arg(self.model)
                .args(["--threads", &self.threads.to_string(), "--rounds", "1", "--depths", depths])
                .args([
                    "--prompt-tokens",
                    &prompt.to_string(),
                    "--gen-tokens",
                    &gen_tokens.to_string(),
                ]),
            "llama_cpp_bench.py",
        )
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr, reason = "xtask reports to the terminal")]
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let o = parse(args)?;
    let finllm = match &o.finllm {
        Some(p) => p.clone(),
        None => {
            let status =
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
                    .current_dir(root())
                    .args(["build", "--release", "--locked", "-p", "cli"])
                    .status()
                    .context("cannot run cargo")?;
            if !status.success() {
                bail!("cargo build --release -p cli failed");
            }
            root().join("target/release/finllm")
        }
    };
    let status = Command::new("python3")
        .arg(root().join("scripts/bench-engine/make_models.py"))
        .arg(&o.models_dir)
        .args(&o.models)
        .status()
        .context("cannot run python3")?;
    if !status.success() {
        bail!("making the benchmark models failed (needs numpy, gguf, llama-cpp-python)");
    }
    let bandwidth = read_bandwidth(o.threads);
    println!("memory read bandwidth ({} threads): {:.1} GB/s", o.threads, bandwidth / 1e9);
    let mut report = Vec::new();
    for name in &o.models {
        let model = o.models_dir.join(format!("{name}.gguf"));
        let pair = Pair { finllm: &finllm, model: &model, threads: o.threads };
        // Short context: prefill 512 tokens, decode 64, alternating engines round by round.
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut bytes = (0.0, 0.0);
        // Resident memory at the end of each engine's run (largest over the rounds), bytes.
        let mut resident = (0.0f64, 0.0f64);
        for round in 0..o.rounds {
            eprintln!("{name}: round {}/{}", round + 1, o.rounds);
            let fl = pair.finllm("0", 512, 64)?;
            resident.0 = resident.0.max(fl["resident_bytes"].as_f64().unwrap_or(0.0));
            ours.push(figures(&fl)[0]);
            let lc = pair.llama_cpp("0", 512, 64)?;
            resident.1 = resident.1.max(lc["resident_bytes"].as_f64().unwrap_or(0.0));
            bytes = (
                lc["weight_bytes"].as_f64().unwrap_or(0.0),
                lc["kv_bytes_per_token"].as_f64().unwrap_or(0.0),
            );
            theirs.push(figures(&lc)[0]);
        }
        let pick = |v: &[(u64, f64, f64)], f: fn(&(u64, f64, f64)) -> f64| {
            median(v.iter().map(f).collect())
        };
        let mut rows = vec![(
            "short",
            0usize,
            pick(&ours, |r| r.1),
            pick(&theirs, |r| r.1),
            pick(&ours, |r| r.2),
            pick(&theirs, |r| r.2),
        )];
        if o.long > 0 {
            eprintln!("{name}: decode after a {}-token prompt", o.long);
            let depth = o.long.to_string();
            let ours = figures(&pair.finllm(&depth, 16, 32)?)[0];
            let theirs = figures(&pair.llama_cpp(&depth, 16, 32)?)[0];
            rows.push(("long", o.long, ours.1, theirs.1, ours.2, theirs.2));
        }
        for (label, depth, p_ours, p_theirs, d_ours, d_theirs) in rows {
            // Decode reads every weight once per token plus the KV cache of the context so far.
            let per_token = bytes.0 + bytes.1 * (depth + 512) as f64;
            let roofline = bandwidth / per_token;
            report.push(json!({
                "model": name, "context": label, "depth": depth,
                "prefill": {"finllm": p_ours, "llama_cpp": p_theirs, "ratio": p_ours / p_theirs},
                "decode": {"finllm": d_ours, "llama_cpp": d_theirs, "ratio": d_ours / d_theirs,
                           "roofline": roofline, "finllm_share": d_ours / roofline,
                           "llama_cpp_share": d_theirs / roofline},
                "resident_bytes": {"finllm": resident.0, "llama_cpp": resident.1,
                                   "ratio": resident.0 / resident.1.max(1.0)},
            }));
        }
    }
    println!(
        "{:<17} {:>6} | {:>9} {:>9} {:>6} | {:>8} {:>8} {:>6} | {:>8} {:>6} {:>6} | {:>6} {:>6} {:>6}",
        "model",
        "depth",
        "pp finllm",
        "pp llama",
        "ratio",
        "tg ours",
        "tg llama",
        "ratio",
        "roofline",
        "ours%",
        "llama%",
        "RSS GB",
        "llama",
        "ratio"
    );
    for r in &report {
        let f = |v: &Value| v.as_f64().unwrap_or(0.0);
        println!(
            "{:<17} {:>6} | {:>9.1} {:>9.1} {:>5.2}x | {:>8.1} {:>8.1} {:>5.2}x | {:>8.1} {:>5.0}% {:>5.0}% | {:>6.2} {:>6.2} {:>5.2}x",
            r["model"].as_str().unwrap_or(""),
            f(&r["depth"]),
            f(&r["prefill"]["finllm"]),
            f(&r["prefill"]["llama_cpp"]),
            f(&r["prefill"]["ratio"]),
            f(&r["decode"]["finllm"]),
            f(&r["decode"]["llama_cpp"]),
            f(&r["decode"]["ratio"]),
            f(&r["decode"]["roofline"]),
            100.0 * f(&r["decode"]["finllm_share"]),
            100.0 * f(&r["decode"]["llama_cpp_share"]),
            f(&r["resident_bytes"]["finllm"]) / 1e9,
            f(&r["resident_bytes"]["llama_cpp"]) / 1e9,
            f(&r["resident_bytes"]["ratio"]),
        );
    }
    let doc = json!({"threads": o.threads, "rounds": o.rounds, "bandwidth_bytes_per_s": bandwidth,
                     "prompt_tokens": 512, "gen_tokens": 64, "results": report});
    let path = root().join("target/bench-engine.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)?;
    println!(
        "(prefill = 512-token prompt; decode = 64 tokens, long: 32 tokens after the prompt; {} rounds, median)",
        o.rounds
    );
    println!("json: {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject_unknown_flags() {
        let o = parse(&["--rounds".into(), "5".into(), "--long".into(), "0".into()]).unwrap();
        assert_eq!((o.rounds, o.long, o.threads), (5, 0, 2));
        assert!(parse(&["--bogus".into()]).is_err());
        assert!(parse(&["--rounds".into()]).is_err());
    }

    #[test]
    fn figures_read_the_bench_json_shape() {
        let doc = json!({"results": [{"depth": 0, "prefill_tokens_per_s": 10.0, "decode_tokens_per_s": 2.5}]});
        assert_eq!(figures(&doc), vec![(0, 10.0, 2.5)]);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
