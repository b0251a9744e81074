//! A 32,768-token context through the `long/` fixture (a 2-layer qwen2 with a 32K window): the last
//! position's logits after a 32K-token prompt must match llama.cpp's (computed by `make_fixtures.py long`
//! with n_ctx 32768), one token more is a clear context-length error, and the process's peak memory grows
//! by no more than the KV cache's preallocated budget plus a small allowance for activations — so no part of
//! attention materialises anything that grows with the square of the context.
//!
//! Tolerance: 5e-3 absolute against llama.cpp on logits whose standard deviation is ~5.8 (measured: 5e-4;
//! both sides keep K/V in f16), and 2e-2 against the float64 numpy forward on 16 tokens (as the F32 golden
//! tests; measured 5e-3, the f16 cache's rounding), which pins the GGUF conventions.

use std::process::Command;

use engine::batch::{LogitsWanted, SeqChunk, step};
use engine::error::EngineError;
use engine::kv_cache::KvCache;

use crate::fixtures::{all_logits, cache_for, fixture, load_fixture, max_abs_diff};

const CONTEXT: usize = 32_768;
const TOLERANCE: f32 = 5e-3;
const NUMPY_TOLERANCE: f32 = 2e-2;
/// Set in the child process that runs the 32K prompt alone, so its memory is measured without other tests.
const CHILD: &str = "FINLLM_LONG_CONTEXT_CHILD";
/// Activations of a 512-token chunk, allocator slack and candle's scratch: far below what a quadratic
/// buffer would take (512 × 32,768 f32 scores per head alone are 64 MiB).
const ALLOWANCE: u64 = 16 << 20;

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("long/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn long_fixture_matches_numpy_on_a_short_prompt() {
    let e = expected();
    let tokens: Vec<u32> = serde_json::from_value(e["short_tokens"].clone()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(e["numpy_short"].clone()).unwrap();
    let m = load_fixture("long/model-f32.gguf");
    assert_eq!(m.model.config().max_position, CONTEXT);
    let diff = max_abs_diff(&all_logits(&m, &tokens), &want);
    assert!(diff <= NUMPY_TOLERANCE, "max |diff| {diff}");
}

/// `VmRSS` or `VmHWM` of this process in bytes (Linux).
fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn prompt_of_32k_tokens_matches_llama_cpp_within_the_cache_budget() {
    if std::env::var_os(CHILD).is_none() {
        if !cfg!(target_os = "linux") {
            println!("skipped: peak-memory measurement reads /proc (Linux only)");
            return;
        }
        // Run alone in a fresh process: peak RSS is per process, and other tests run in parallel threads.
        let name = "long_context::prompt_of_32k_tokens_matches_llama_cpp_within_the_cache_budget";
        let out = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{stdout}");
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("32K prefill:"), "the child ran no test: {stdout}");
        return;
    }
    let e = expected();
    let want: Vec<f32> = serde_json::from_value(e["llamacpp_f32_last"].clone()).unwrap();
    let prompt: Vec<u32> = (0..CONTEXT).map(|i| 3 + (i * 7919 % 297) as u32).collect();
    let m = load_fixture("long/model-f32.gguf");
    let budget = (KvCache::bytes_per_token(m.model.config()) * CONTEXT) as u64;
    // Reset the peak-RSS counter to the current RSS (Linux `clear_refs` 5); without it the peak since
    // process start counts, which only makes the check stricter.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = proc_status("VmRSS:").unwrap();

    let mut cache = cache_for(&m, 32, CONTEXT);
    let seq = cache.add_sequence();
    let start = std::time::Instant::now();
    let mut last = Vec::new();
    let n_chunks = CONTEXT.div_ceil(512);
    for (i, part) in prompt.chunks(512).enumerate() {
        let logits = if i + 1 == n_chunks { LogitsWanted::Last } else { LogitsWanted::None };
        let out =
            step(m.model.as_ref(), &mut cache, &[SeqChunk { seq, tokens: part, logits }]).unwrap();
        if let Some(row) = out.into_iter().next().and_then(|c| c.rows.into_iter().next()) {
            last = row;
        }
    }
    let elapsed = start.elapsed();
    let peak = proc_status("VmHWM:").unwrap();
    let growth = peak.saturating_sub(before);

    let err = step(
        m.model.as_ref(),
        &mut cache,
        &[SeqChunk { seq, tokens: &[3], logits: LogitsWanted::Last }],
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::ContextLength { needed: 32_769, max: CONTEXT }), "{err}");

    let diff = max_abs_diff(&[last], &[want]);
    println!(
        "32K prefill: {elapsed:?}; max |logit - llama.cpp| {diff:.5}; peak RSS growth {:.1} MiB for a \
         {:.1} MiB KV cache budget",
        growth as f64 / 1048576.0,
        budget as f64 / 1048576.0
    );
    assert!(diff <= TOLERANCE, "last-position logits differ from llama.cpp by {diff}");
    assert!(
        growth <= budget + ALLOWANCE,
        "peak memory grew by {growth} bytes, more than the cache budget {budget} + {ALLOWANCE}"
    );
}
