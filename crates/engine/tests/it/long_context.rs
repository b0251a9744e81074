//! A 32,768-token context through a tiny model (slow: runs only with `RUN_SLOW_TESTS=1`). The cache is
//! budgeted for exactly 32,768 tokens; the prompt fills it in prefill chunks, and the last position's logits
//! must not depend on how the prompt was chunked. One token more is a clear context-length error.

use engine::batch::{LogitsWanted, SeqChunk, step};
use engine::error::EngineError;

use crate::fixtures::{cache_for, load_fixture, max_abs_diff};

const CONTEXT: usize = 32_768;

fn last_logits(chunk: usize, prompt: &[u32]) -> (Vec<Vec<f32>>, std::time::Duration) {
    let m = load_fixture("qwen2/model-q8_0.gguf");
    let mut cache = cache_for(&m, 32, CONTEXT);
    let seq = cache.add_sequence();
    let start = std::time::Instant::now();
    let mut last = Vec::new();
    for part in prompt.chunks(chunk) {
        let out = step(
            m.model.as_ref(),
            &mut cache,
            &[SeqChunk { seq, tokens: part, logits: LogitsWanted::Last }],
        )
        .unwrap();
        last = out.into_iter().next().unwrap().rows;
    }
    let elapsed = start.elapsed();
    let err = step(
        m.model.as_ref(),
        &mut cache,
        &[SeqChunk { seq, tokens: &[1], logits: LogitsWanted::Last }],
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::ContextLength { needed: 32_769, max: CONTEXT }), "{err}");
    (last, elapsed)
}

#[test]
fn context_of_32k_tokens_works_and_chunking_does_not_matter() {
    if std::env::var_os("RUN_SLOW_TESTS").is_none() {
        println!("skipped: set RUN_SLOW_TESTS=1 to run the 32K-context test");
        return;
    }
    let prompt: Vec<u32> = (0..CONTEXT).map(|i| 3 + (i * 7919 % 297) as u32).collect();
    let (a, ta) = last_logits(512, &prompt);
    let (b, tb) = last_logits(2048, &prompt);
    println!("32K prefill: {ta:?} in 512-token chunks, {tb:?} in 2048-token chunks");
    assert!(max_abs_diff(&a, &b) <= 1e-3, "{}", max_abs_diff(&a, &b));
}
