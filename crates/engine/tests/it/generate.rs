//! The decode path agrees with the prefill path: greedy tokens generated one step at a time are the argmax
//! of the logits that one prefill over prompt + output computes, for prefill chunks of any size.

use engine::generate::{FinishReason, GenerateRequest, generate};
use engine::sampling::{Sampler, SamplingParams, log_softmax, top_logprobs};

use crate::fixtures::{all_logits, cache_for, expected, load_fixture};

fn greedy(
    model: &str,
    prefill_chunk: usize,
    max_tokens: usize,
    stop_tokens: &[u32],
) -> (Vec<u32>, FinishReason) {
    let m = load_fixture(model);
    let prompt = expected(model.split('/').next().unwrap()).tokens;
    let mut cache = cache_for(&m, 4, 64);
    let mut sampler = Sampler::new(SamplingParams::greedy()).unwrap();
    let req = GenerateRequest { prompt: &prompt, max_tokens, stop_tokens, prefill_chunk };
    let mut out = Vec::new();
    let stats = generate(m.model.as_ref(), &mut cache, &mut sampler, &req, |s| {
        out.push(s.token);
        true
    })
    .unwrap();
    assert_eq!(stats.prompt_tokens, prompt.len());
    assert_eq!(cache.free_blocks(), cache.total_blocks(), "the sequence is freed");
    (out, stats.finish)
}

#[test]
fn greedy_decode_matches_argmax_of_a_full_prefill() {
    for model in ["llama/model-f32.gguf", "qwen2/hf"] {
        let (out, finish) = greedy(model, 5, 12, &[]);
        assert_eq!(out.len(), 12);
        assert_eq!(finish, FinishReason::Length);
        let m = load_fixture(model);
        let mut all = expected(model.split('/').next().unwrap()).tokens;
        let n_prompt = all.len();
        all.extend(&out);
        let rows = all_logits(&m, &all);
        for (i, &t) in out.iter().enumerate() {
            let best = top_logprobs(&log_softmax(&rows[n_prompt - 1 + i]), 1)[0].token;
            assert_eq!(t, best, "{model}: token {i}");
        }
        assert_eq!(
            greedy(model, 64, 12, &[]).0,
            out,
            "{model}: prefill chunk size changes nothing"
        );
    }
}

#[test]
fn stop_token_ends_generation() {
    let (out, _) = greedy("llama/model-f32.gguf", 16, 12, &[]);
    let (stopped, finish) = greedy("llama/model-f32.gguf", 16, 12, &[out[3]]);
    let first = out.iter().position(|&t| t == out[3]).unwrap();
    assert_eq!(stopped, out[..first]);
    assert_eq!(finish, FinishReason::Stop);
}

#[test]
fn prompt_longer_than_the_context_is_an_error() {
    let m = load_fixture("llama/model-f32.gguf");
    let mut cache = cache_for(&m, 4, 8);
    let mut sampler = Sampler::new(SamplingParams::greedy()).unwrap();
    let prompt = vec![5u32; 9];
    let req =
        GenerateRequest { prompt: &prompt, max_tokens: 1, stop_tokens: &[], prefill_chunk: 4 };
    let err = generate(m.model.as_ref(), &mut cache, &mut sampler, &req, |_| true).unwrap_err();
    assert!(err.to_string().contains("exceeds the context window of 8"), "{err}");
}
