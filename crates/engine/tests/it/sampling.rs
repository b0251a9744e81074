//! Sampling on real model logits: seeds reproduce, truncations and penalties do what they claim, logprobs are
//! the log-softmax of the logits, prompt logprobs score each given token.

use std::collections::HashMap;

use engine::sampling::{Sampler, SamplingParams, log_softmax, prompt_logprobs, top_logprobs};

use crate::fixtures::{all_logits, expected, load_fixture};

fn logits() -> (Vec<u32>, Vec<Vec<f32>>) {
    let m = load_fixture("llama/model-f32.gguf");
    let tokens = expected("llama").tokens;
    let rows = all_logits(&m, &tokens);
    (tokens, rows)
}

fn params(temperature: f32, seed: u64) -> SamplingParams {
    SamplingParams { temperature, seed, ..SamplingParams::greedy() }
}

fn draw(p: SamplingParams, row: &[f32], n: usize) -> Vec<u32> {
    let mut s = Sampler::new(p).unwrap();
    (0..n).map(|_| s.sample(row, &[], &[]).unwrap().token).collect()
}

#[test]
fn same_seed_same_tokens_other_seed_other_tokens() {
    let (_, rows) = logits();
    let row = &rows[5];
    let a = draw(params(1.5, 7), row, 64);
    assert_eq!(a, draw(params(1.5, 7), row, 64));
    assert_ne!(a, draw(params(1.5, 8), row, 64));
}

#[test]
fn greedy_and_top_k_one_pick_the_argmax() {
    let (_, rows) = logits();
    for row in &rows {
        let best = top_logprobs(&log_softmax(row), 1)[0].token;
        assert_eq!(draw(SamplingParams::greedy(), row, 1), vec![best]);
        assert_eq!(draw(SamplingParams { top_k: 1, ..params(2.0, 3) }, row, 5), vec![best; 5]);
    }
}

#[test]
fn truncations_restrict_the_candidates() {
    let (_, rows) = logits();
    let row = &rows[3];
    let ranked = top_logprobs(&log_softmax(row), row.len());
    let top5: Vec<u32> = ranked[..5].iter().map(|t| t.token).collect();
    for t in draw(SamplingParams { top_k: 5, ..params(5.0, 1) }, row, 200) {
        assert!(top5.contains(&t));
    }
    // top_p: the smallest prefix of the ranking whose mass reaches 0.5.
    let mut mass = 0.0;
    let nucleus: Vec<u32> = ranked
        .iter()
        .take_while(|t| {
            let inside = mass < 0.5;
            mass += t.logprob.exp();
            inside
        })
        .map(|t| t.token)
        .collect();
    for t in draw(SamplingParams { top_p: 0.5, ..params(1.0, 2) }, row, 200) {
        assert!(nucleus.contains(&t), "{t} outside the nucleus {nucleus:?}");
    }
    let floor = ranked[0].logprob.exp() * 0.2;
    for t in draw(SamplingParams { min_p: 0.2, ..params(1.0, 3) }, row, 200) {
        assert!(log_softmax(row)[t as usize].exp() >= floor * 0.999);
    }
}

#[test]
fn sampling_frequencies_follow_the_distribution() {
    let (_, rows) = logits();
    let row = &rows[8];
    let probs: Vec<f32> = log_softmax(row).iter().map(|l| l.exp()).collect();
    let n = 4000;
    let mut counts = vec![0usize; row.len()];
    for t in draw(params(1.0, 11), row, n) {
        counts[t as usize] += 1;
    }
    let best = top_logprobs(&log_softmax(row), 1)[0].token as usize;
    let freq = counts[best] as f32 / n as f32;
    assert!((freq - probs[best]).abs() < 0.05, "argmax drawn {freq}, probability {}", probs[best]);
}

#[test]
fn bias_and_penalties_move_the_choice() {
    let (_, rows) = logits();
    let row = &rows[2];
    let best = draw(SamplingParams::greedy(), row, 1)[0];
    let banned =
        SamplingParams { logit_bias: HashMap::from([(best, -100.0)]), ..SamplingParams::greedy() };
    assert_ne!(draw(banned, row, 1)[0], best);
    let forced =
        SamplingParams { logit_bias: HashMap::from([(77, 100.0)]), ..SamplingParams::greedy() };
    assert_eq!(draw(forced, row, 1)[0], 77);

    let mut s =
        Sampler::new(SamplingParams { presence_penalty: 100.0, ..SamplingParams::greedy() })
            .unwrap();
    assert_ne!(s.sample(row, &[], &[best]).unwrap().token, best);
    let mut s =
        Sampler::new(SamplingParams { repetition_penalty: 1e6, ..SamplingParams::greedy() })
            .unwrap();
    let positive_best = row[best as usize] > 0.0;
    if positive_best {
        assert_ne!(s.sample(row, &[best], &[]).unwrap().token, best);
    }
}

#[test]
fn logprobs_are_log_softmax_of_the_logits() {
    let (_, rows) = logits();
    let row = &rows[0];
    let mut s = Sampler::new(SamplingParams { top_logprobs: 5, ..params(1.0, 4) }).unwrap();
    let out = s.sample(row, &[], &[]).unwrap();
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
    let want = f64::from(row[out.token as usize] - max) - z.ln();
    assert!((f64::from(out.logprob) - want).abs() < 1e-5);
    let total: f32 = log_softmax(row).iter().map(|l| l.exp()).sum();
    assert!((total - 1.0).abs() < 1e-4);
    assert_eq!(out.top.len(), 5);
    assert!(out.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
    assert_eq!(out.top[0].token, top_logprobs(&log_softmax(row), 1)[0].token);
}

#[test]
fn prompt_logprobs_score_each_next_token() {
    let (tokens, rows) = logits();
    let lps = prompt_logprobs(&rows, &tokens).unwrap();
    assert_eq!(lps.len(), tokens.len() - 1);
    for (i, lp) in lps.iter().enumerate() {
        assert_eq!(*lp, log_softmax(&rows[i])[tokens[i + 1] as usize]);
        assert!(*lp < 0.0);
    }
}

#[test]
fn invalid_parameters_are_rejected() {
    for p in [
        SamplingParams { temperature: -1.0, ..SamplingParams::greedy() },
        SamplingParams { top_p: 0.0, ..SamplingParams::greedy() },
        SamplingParams { min_p: 2.0, ..SamplingParams::greedy() },
        SamplingParams { repetition_penalty: 0.0, ..SamplingParams::greedy() },
    ] {
        assert!(Sampler::new(p).is_err());
    }
}
