//! The batched step and the paged cache must not change results: a batch of sequences at different depths,
//! mixing prefill chunks and single decode tokens, gives each sequence the logits it gets alone; a sequence
//! forked from a cached prefix gives the logits of recomputing that prefix, and the original is unaffected.

use engine::batch::{LogitsWanted, SeqChunk, step};
use engine::error::EngineError;

use crate::fixtures::{all_logits, cache_for, expected, load_fixture, max_abs_diff};

const TOLERANCE: f32 = 1e-4;

fn sequences(base: &[u32]) -> Vec<Vec<u32>> {
    let mut b = base.to_vec();
    b.rotate_left(5);
    let c: Vec<u32> = base.iter().rev().copied().collect();
    vec![base.to_vec(), b, c]
}

fn check_batched(model: &str) {
    let m = load_fixture(model);
    let arch = model.split('/').next().unwrap();
    let seqs = sequences(&expected(arch).tokens);
    let alone: Vec<Vec<Vec<f32>>> = seqs.iter().map(|s| all_logits(&m, s)).collect();

    let mut cache = cache_for(&m, 4, 64);
    let ids: Vec<u64> = seqs.iter().map(|_| cache.add_sequence()).collect();
    // Chunk boundaries per step for each sequence: prefill chunks of different sizes, then decode tokens.
    let schedule: [[usize; 3]; 6] =
        [[5, 3, 1], [1, 7, 1], [1, 1, 6], [4, 1, 1], [5, 4, 7], [0, 0, 0]];
    let mut done = [0usize; 3];
    let mut got: Vec<Vec<Vec<f32>>> = vec![Vec::new(); 3];
    for row in schedule {
        let chunks: Vec<SeqChunk<'_>> = (0..3)
            .filter(|&i| done[i] < seqs[i].len())
            .map(|i| {
                let n = if row[i] == 0 {
                    seqs[i].len() - done[i]
                } else {
                    row[i].min(seqs[i].len() - done[i])
                };
                SeqChunk {
                    seq: ids[i],
                    tokens: &seqs[i][done[i]..done[i] + n],
                    logits: LogitsWanted::All,
                }
            })
            .collect();
        if chunks.is_empty() {
            break;
        }
        for out in step(m.model.as_ref(), &mut cache, &chunks).unwrap() {
            let i = ids.iter().position(|&id| id == out.seq).unwrap();
            assert_eq!(out.first_position, done[i]);
            done[i] += out.rows.len();
            got[i].extend(out.rows);
        }
    }
    for i in 0..3 {
        let diff = max_abs_diff(&got[i], &alone[i]);
        assert!(diff <= TOLERANCE, "{model} sequence {i}: batched differs from alone by {diff}");
        assert_eq!(cache.seq_len(ids[i]).unwrap(), seqs[i].len());
    }
}

#[test]
fn batched_steps_equal_sequential_f32() {
    check_batched("llama/model-f32.gguf");
}

#[test]
fn batched_steps_equal_sequential_q8_0() {
    check_batched("qwen2/model-q8_0.gguf");
}

/// Mixture of experts: tokens of different sequences meet in one expert's product, and each must come out as
/// if it had been alone.
#[test]
fn batched_moe_steps_equal_sequential() {
    check_batched("bailingmoe2/model-f32.gguf");
    check_batched("bailingmoe2/model-q8_0.gguf");
    check_batched("bailingmoe/model-q8_0.gguf");
}

#[test]
fn last_logits_are_the_last_row_of_all() {
    let m = load_fixture("qwen2/hf");
    let tokens = expected("qwen2").tokens;
    let all = all_logits(&m, &tokens);
    // Same block size as `all_logits`, so the only difference is how many rows the output head multiplies.
    let mut cache = cache_for(&m, 4, 64);
    let seq = cache.add_sequence();
    let out = step(
        m.model.as_ref(),
        &mut cache,
        &[SeqChunk { seq, tokens: &tokens, logits: LogitsWanted::Last }],
    )
    .unwrap();
    assert_eq!(out[0].rows.len(), 1);
    let diff = max_abs_diff(&out[0].rows, &all[all.len() - 1..]);
    assert!(diff <= TOLERANCE, "last row differs from all-rows by {diff}");
    let none = step(
        m.model.as_ref(),
        &mut cache,
        &[SeqChunk { seq, tokens: &[5], logits: LogitsWanted::None }],
    )
    .unwrap();
    assert!(none[0].rows.is_empty());
}

#[test]
fn forked_prefix_gives_recomputed_logits_and_leaves_the_source_intact() {
    let m = load_fixture("llama/model-f32.gguf");
    let prompt = expected("llama").tokens;
    let continuation: Vec<u32> = vec![17, 42, 99, 7, 250, 31];
    let mut cache = cache_for(&m, 4, 128);
    let src = cache.add_sequence();
    step(
        m.model.as_ref(),
        &mut cache,
        &[SeqChunk { seq: src, tokens: &prompt, logits: LogitsWanted::None }],
    )
    .unwrap();
    let used = cache.total_blocks() - cache.free_blocks();
    // Share 10 tokens: two full blocks plus a partial one, which must be copied before either side writes.
    let fork = cache.fork(src, 10).unwrap();
    assert_eq!(cache.total_blocks() - cache.free_blocks(), used, "forking copies nothing");
    let both = step(
        m.model.as_ref(),
        &mut cache,
        &[
            SeqChunk { seq: fork, tokens: &continuation, logits: LogitsWanted::All },
            SeqChunk { seq: src, tokens: &[3], logits: LogitsWanted::Last },
        ],
    )
    .unwrap();
    let mut fresh: Vec<u32> = prompt[..10].to_vec();
    fresh.extend(&continuation);
    let want = all_logits(&m, &fresh);
    assert!(max_abs_diff(&both[0].rows, &want[10..]) <= TOLERANCE);
    let mut src_tokens = prompt.clone();
    src_tokens.push(3);
    let want_src = all_logits(&m, &src_tokens);
    assert!(max_abs_diff(&both[1].rows, &want_src[want_src.len() - 1..]) <= TOLERANCE);
    // Freeing both returns every block.
    cache.free_sequence(fork).unwrap();
    cache.free_sequence(src).unwrap();
    assert_eq!(cache.free_blocks(), cache.total_blocks());
}

#[test]
fn errors_leave_the_cache_unchanged() {
    let m = load_fixture("llama/model-f32.gguf");
    let mut cache = cache_for(&m, 4, 16);
    let seq = cache.add_sequence();
    let long = vec![5u32; 17];
    let err = step(
        m.model.as_ref(),
        &mut cache,
        &[SeqChunk { seq, tokens: &long, logits: LogitsWanted::Last }],
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::ContextLength { needed: 17, max: 16 }), "{err}");
    assert_eq!(cache.seq_len(seq).unwrap(), 0);

    let other = cache.add_sequence();
    let ten = vec![5u32; 10];
    let ok = SeqChunk { seq, tokens: &ten, logits: LogitsWanted::None };
    step(m.model.as_ref(), &mut cache, &[ok]).unwrap();
    // 10 + 10 tokens need 6 blocks of 4; the budget has 4.
    let both = [
        SeqChunk { seq: other, tokens: &[1, 2], logits: LogitsWanted::Last },
        SeqChunk { seq, tokens: &ten[..6], logits: LogitsWanted::Last },
    ];
    let err = step(m.model.as_ref(), &mut cache, &both).unwrap_err();
    assert!(matches!(err, EngineError::CacheFull { .. }), "{err}");
    assert_eq!(cache.seq_len(seq).unwrap(), 10);
    assert_eq!(cache.seq_len(other).unwrap(), 0, "the step is rolled back as a whole");

    let bad = step(
        m.model.as_ref(),
        &mut cache,
        &[SeqChunk { seq, tokens: &[300], logits: LogitsWanted::Last }],
    );
    assert!(matches!(bad, Err(EngineError::InvalidRequest(_))));
    let unknown = step(
        m.model.as_ref(),
        &mut cache,
        &[SeqChunk { seq: 999, tokens: &[1], logits: LogitsWanted::Last }],
    );
    assert!(matches!(unknown, Err(EngineError::UnknownSequence(999))));
}
