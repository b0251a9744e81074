//! Golden logits: the tiny random models in `fixtures/` (written by `fixtures/make_fixtures.py`) must give
//! the logits that llama.cpp and an independent numpy forward computed for the same token sequence.
//!
//! Tolerances are absolute, on logits whose standard deviation is ~1 (llama) and ~8 (qwen2):
//! * F32 (GGUF and safetensors): 2e-2 — the only loss is the f16 KV cache, which llama.cpp also uses;
//! * F16 weights vs llama.cpp's F16 run: 2e-2;
//! * Q4_0 (with a Q8_0 output head) and Q4_K_M (Q4_K + Q6_K) vs llama.cpp's own run: 0.1 — their error against
//!   the F32 reference is 0.74 and 0.46, so this still pins the dequantization down;
//! * Q8_0 vs llama.cpp's own Q8_0 run: 0.1 (llama, bailingmoe) / 0.3 (bailingmoe2, logit std ~2) / 0.6 (qwen2) —
//!   both quantize activations to Q8_0 but round and accumulate in different orders; the quantization error
//!   itself is larger (up to 0.59 vs the F32 reference; llama.cpp's own bailingmoe2 Q8_0 run is 0.20 from numpy),
//!   so a wrong dequantization or layout would still fail by a wide margin.
//!
//! The Bailing MoE fixtures (v1 with `norm_head` in HF form; v2 with groups, expert bias, a dense first layer
//! and an MTP layer to skip) also pin the routing: see `bailingmoe2_expert_bias_moves_routing_and_logits`.

use engine::batch::{LogitsWanted, SeqChunk, step_traced};
use engine::config::ModelConfig;
use engine::gguf::GgufFile;
use engine::model::LoadedModel;
use engine::models::bailing::BailingMoe;
use engine::weights::Weights;

use crate::fixtures::{all_logits, cache_for, expected, fixture, load_fixture, max_abs_diff};

fn check(model: &str, arch: &str, reference: &str, tolerance: f32) {
    let exp = expected(arch);
    let m = load_fixture(&format!("{arch}/{model}"));
    let got = all_logits(&m, &exp.tokens);
    let want = exp.rows(reference);
    let diff = max_abs_diff(&got, want);
    let argmax =
        |r: &Vec<f32>| r.iter().enumerate().fold(0, |b, (i, v)| if *v > r[b] { i } else { b });
    // The most likely token must agree wherever the reference's best two tokens are further apart than the
    // tolerance; a nearer pair may swap within it (quantized MoE routing makes such near-ties flip).
    let margin = |r: &Vec<f32>| {
        let best = r[argmax(r)];
        best - r.iter().copied().filter(|v| *v < best).fold(f32::NEG_INFINITY, f32::max)
    };
    let top1 = got.iter().zip(want).filter(|(a, b)| argmax(a) == argmax(b)).count();
    let decided = got
        .iter()
        .zip(want)
        .filter(|(a, b)| argmax(a) != argmax(b) && margin(b) > tolerance)
        .count();
    println!(
        "{arch}/{model} vs {reference}: max |diff| = {diff}, vs numpy {}, top-1 agrees {top1}/{}",
        max_abs_diff(&got, exp.rows("numpy")),
        got.len()
    );
    assert_eq!(
        decided, 0,
        "{arch}/{model}: the most likely next token differs from {reference} where it was clear"
    );
    assert!(diff <= tolerance, "{arch}/{model} vs {reference}: max |diff| {diff} > {tolerance}");
}

#[test]
fn llama_gguf_f32_matches_llamacpp() {
    check("model-f32.gguf", "llama", "llamacpp_f32", 2e-2);
}

#[test]
fn llama_gguf_f32_matches_numpy() {
    check("model-f32.gguf", "llama", "numpy", 2e-2);
}

#[test]
fn llama_gguf_q8_0_matches_llamacpp() {
    check("model-q8_0.gguf", "llama", "llamacpp_q8_0", 0.1);
}

#[test]
fn llama_safetensors_matches_numpy() {
    check("hf", "llama", "numpy", 2e-2);
}

#[test]
fn qwen2_gguf_f32_matches_llamacpp() {
    check("model-f32.gguf", "qwen2", "llamacpp_f32", 2e-2);
}

#[test]
fn qwen2_gguf_f32_matches_numpy() {
    check("model-f32.gguf", "qwen2", "numpy", 2e-2);
}

#[test]
fn qwen2_gguf_q8_0_matches_llamacpp() {
    check("model-q8_0.gguf", "qwen2", "llamacpp_q8_0", 0.6);
}

#[test]
fn qwen2_sharded_f16_safetensors_matches_numpy() {
    check("hf", "qwen2", "numpy", 2e-2);
}

#[test]
fn llama_gguf_f16_matches_llamacpp() {
    check("model-f16.gguf", "llama", "llamacpp_f16", 2e-2);
}

#[test]
fn llama_gguf_q4_0_matches_llamacpp() {
    check("model-q4_0.gguf", "llama", "llamacpp_q4_0", 0.1);
}

#[test]
fn llama_gguf_q4_k_m_matches_llamacpp() {
    check("model-q4_k_m.gguf", "llama-k", "llamacpp_q4_k_m", 0.1);
}

#[test]
fn bailingmoe_gguf_f32_matches_llamacpp() {
    check("model-f32.gguf", "bailingmoe", "llamacpp_f32", 2e-2);
}

#[test]
fn bailingmoe_gguf_f32_matches_numpy() {
    check("model-f32.gguf", "bailingmoe", "numpy", 2e-2);
}

#[test]
fn bailingmoe_gguf_q8_0_matches_llamacpp() {
    check("model-q8_0.gguf", "bailingmoe", "llamacpp_q8_0", 0.1);
}

#[test]
fn bailingmoe_safetensors_with_norm_head_matches_numpy() {
    check("hf", "bailingmoe", "numpy", 2e-2);
}

#[test]
fn bailingmoe2_gguf_f32_matches_llamacpp() {
    check("model-f32.gguf", "bailingmoe2", "llamacpp_f32", 2e-2);
}

#[test]
fn bailingmoe2_gguf_f32_matches_numpy() {
    check("model-f32.gguf", "bailingmoe2", "numpy", 2e-2);
}

#[test]
fn bailingmoe2_gguf_q8_0_matches_llamacpp() {
    check("model-q8_0.gguf", "bailingmoe2", "llamacpp_q8_0", 0.3);
}

#[test]
fn bailingmoe2_safetensors_with_mtp_layer_matches_numpy() {
    check("hf", "bailingmoe2", "numpy", 2e-2);
}

#[test]
fn bailingmoe2_with_another_expert_bias_matches_llamacpp() {
    check("model-f32-bias.gguf", "bailingmoe2", "llamacpp_f32_bias", 2e-2);
}

/// The experts each MoE layer chose for the first token of `tokens`, sorted.
fn first_token_experts(m: &LoadedModel, tokens: &[u32]) -> Vec<Vec<u32>> {
    let mut cache = cache_for(m, 4, 64);
    let seq = cache.add_sequence();
    let mut routes = Vec::new();
    let chunk = SeqChunk { seq, tokens, logits: LogitsWanted::Last };
    step_traced(m.model.as_ref(), &mut cache, &[chunk], &mut routes).unwrap();
    let k = m.model.config().moe.as_ref().unwrap().n_experts_used;
    routes
        .iter()
        .map(|layer| {
            let mut experts: Vec<u32> = layer[..k].iter().map(|r| r.0).collect();
            experts.sort_unstable();
            experts
        })
        .collect()
}

#[test]
fn bailingmoe2_expert_bias_moves_routing_and_logits() {
    let exp = expected("bailingmoe2");
    // numpy's choice per layer (the dense first layer has none).
    let want = |key: &str| -> Vec<Vec<u32>> {
        exp.rows(key)
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| r.iter().map(|v| *v as u32).collect())
            .collect()
    };
    let plain = load_fixture("bailingmoe2/model-f32.gguf");
    assert_eq!(first_token_experts(&plain, &exp.tokens), want("routing_first_token"));
    let biased_file = load_fixture("bailingmoe2/model-f32-bias.gguf");
    assert_eq!(first_token_experts(&biased_file, &exp.tokens), want("routing_first_token_bias"));
    assert_ne!(want("routing_first_token"), want("routing_first_token_bias"));

    // The same model with only its expert bias replaced in memory (from the other file) routes and scores
    // like the other file, i.e. like llama.cpp with that bias.
    let file = GgufFile::open(&fixture("bailingmoe2/model-f32.gguf")).unwrap();
    let cfg = ModelConfig::from_gguf(&file).unwrap();
    let mut model = BailingMoe::load(&Weights::Gguf(file), cfg, false).unwrap();
    let other = GgufFile::open(&fixture("bailingmoe2/model-f32-bias.gguf")).unwrap();
    let mut rebiased = 0;
    for layer in 0..3 {
        let Some(moe) = model.moe_layer_mut(layer) else { continue };
        let t = other.tensor(&format!("blk.{layer}.exp_probs_b.bias")).unwrap();
        let bias = t.dequantize(&candle_core::Device::Cpu).unwrap().to_vec1::<f32>().unwrap();
        moe.router_mut().set_bias(bias).unwrap();
        rebiased += 1;
    }
    assert_eq!(rebiased, 2, "layers 1 and 2 are MoE layers");
    let rebiased = LoadedModel { model: Box::new(model), gguf: None, hf_dir: None };
    assert_eq!(first_token_experts(&rebiased, &exp.tokens), want("routing_first_token_bias"));
    let got = all_logits(&rebiased, &exp.tokens);
    let diff = max_abs_diff(&got, exp.rows("llamacpp_f32_bias"));
    assert!(diff <= 2e-2, "re-biased model vs llama.cpp with that bias: {diff}");
    let moved = max_abs_diff(&got, &all_logits(&plain, &exp.tokens));
    assert!(moved > 1.0, "changing the bias moved the logits by only {moved}");
}
