//! Turning logits into the next token: logit bias, repetition / presence / frequency penalties, greedy or
//! temperature sampling with top-k, top-p and min-p, a seeded RNG so that a request with a seed is
//! reproducible, per-token logprobs with top-N alternatives, prompt logprobs for evaluation, and stop strings
//! that cut streamed text exactly at the stop.
//!
//! Order of operations follows llama.cpp and vLLM: bias, penalties, then temperature and the truncations.
//! Reported logprobs are those of the model's raw distribution (log-softmax of the logits before any of the
//! above), as OpenAI's API and vLLM's default report them.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{
    constrain::TokenMask,
    error::{EngineError, Result},
    kernels::softmax,
};

/// How to choose tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability sums to `top_p` (1: off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0: off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of tokens seen in prompt or output (1: off; CTRL, Keskar 2019).
    pub repetition_penalty: f32,
    /// Subtracted once from the logit of every token already generated (OpenAI semantics).
    pub presence_penalty: f32,
    /// Subtracted per occurrence from the logit of every token already generated.
    pub frequency_penalty: f32,
    /// Added to the logits of these tokens (e.g. -100 bans a token).
    pub logit_bias: HashMap<u32, f32>,
    /// Seed of the random generator.
    pub seed: u64,
    /// Return this many most likely alternatives with each token's logprob (0: only the chosen token's).
    pub top_logprobs: usize,
}

impl SamplingParams {
    /// Greedy decoding with no penalties.
    pub fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: HashMap::new(),
            seed: 0,
            top_logprobs: 0,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(EngineError::InvalidRequest(m.to_owned()));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p must be in [0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty must be a finite number > 0");
        }
        if !self.presence_penalty.is_finite() || !self.frequency_penalty.is_finite() {
            return bad("presence and frequency penalties must be finite");
        }
        if self.logit_bias.values().any(|b| b.is_nan()) {
            return bad("logit_bias values must be numbers");
        }
        Ok(())
    }
}

/// A token and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLogprob {
    /// The token id.
    pub token: u32,
    /// Natural-log probability under the model's raw distribution.
    pub logprob: f32,
}

/// The outcome of one sampling step.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// The chosen token.
    pub token: u32,
    /// Its log-probability under the model's raw distribution.
    pub logprob: f32,
    /// The most likely alternatives, best first (`top_logprobs` of them).
    pub top: Vec<TokenLogprob>,
}

/// Samples tokens for one sequence; owns its seeded RNG, so the same seed and logits give the same tokens.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// Per-token weights over the vocabulary, kept between tokens so that sampling does not allocate and
    /// fault in a fresh vocabulary-sized buffer every time.
    weights: Vec<f32>,
}

impl Sampler {
    /// Validates the parameters and seeds the generator.
    pub fn new(params: SamplingParams) -> Result<Sampler> {
        params.validate()?;
        let rng = StdRng::seed_from_u64(params.seed);
        Ok(Sampler { params, rng, weights: Vec::new() })
    }

    /// The parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Chooses the next token from `logits`; `prompt` and `generated` feed the penalties.
    pub fn sample(&mut self, logits: &[f32], prompt: &[u32], generated: &[u32]) -> Result<Sampled> {
        self.sample_masked(logits, prompt, generated, None)
    }

    /// [`Sampler::sample`] among the tokens `allowed` only (constrained decoding); the reported logprobs stay
    /// those of the model's raw distribution.
    pub fn sample_masked(
        &mut self,
        logits: &[f32],
        prompt: &[u32],
        generated: &[u32],
        allowed: Option<&TokenMask>,
    ) -> Result<Sampled> {
        let p = &self.params;
        let mut adjusted: Vec<f32> =
            logits.iter().map(|&l| if l.is_nan() { f32::NEG_INFINITY } else { l }).collect();
        for (&token, &bias) in &p.logit_bias {
            if let Some(l) = adjusted.get_mut(token as usize) {
                *l += bias;
            }
        }
        if let Some(mask) = allowed {
            for (token, l) in adjusted.iter_mut().enumerate() {
                if !mask.contains(token as u32) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        apply_penalties(&mut adjusted, p, prompt, generated);
        let token = if p.temperature == 0.0 { argmax(&adjusted) } else { self.draw(&adjusted) };
        let token =
            token.ok_or_else(|| EngineError::InvalidRequest("every token is masked".to_owned()))?;
        let log_z = log_sum_exp(logits);
        let logprob = |l: f32| (f64::from(l) - log_z) as f32;
        let top = top_tokens(logits, self.params.top_logprobs)
            .into_iter()
            .map(|(token, l)| TokenLogprob { token, logprob: logprob(l) })
            .collect();
        Ok(Sampled { token, logprob: logprob(logits[token as usize]), top })
    }

    /// A token drawn from the distribution at the set temperature, truncated by top-k, top-p and min-p;
    /// `None` when every token is masked.
    fn draw(&mut self, logits: &[f32]) -> Option<u32> {
        let max = softmax::max(logits);
        if !max.is_finite() {
            return None;
        }
        let p = &self.params;
        self.weights.resize(logits.len(), 0.0);
        // The best token has weight exp(0) = 1 exactly; masked tokens weigh 0.
        softmax::exp_weights(logits, max, 1.0 / p.temperature, &mut self.weights);
        if p.top_k == 0 && p.top_p >= 1.0 && p.min_p <= 0.0 {
            let total: f64 = self.weights.chunks(PICK_BLOCK).map(softmax::sum).sum();
            let r = self.rng.random::<f64>() * total;
            return pick(&self.weights, r).map(|i| i as u32);
        }
        let candidates = truncate(p, &self.weights);
        let total: f64 = candidates.iter().map(|c| f64::from(c.1)).sum();
        let mut r = self.rng.random::<f64>() * total;
        let mut chosen = candidates.last().map(|c| c.0);
        for &(id, w) in &candidates {
            if r < f64::from(w) {
                chosen = Some(id);
                break;
            }
            r -= f64::from(w);
        }
        chosen
    }
}

/// Weights per block when [`pick`] locates a draw: blocks are summed vectorised, one is walked.
const PICK_BLOCK: usize = 2048;

/// The index `i` where the running sum of `weights` passes `r` (`0 ≤ r < Σ weights`), skipping zero
/// weights; the last positive weight when rounding leaves `r` past the end.
fn pick(weights: &[f32], mut r: f64) -> Option<usize> {
    for (b, block) in weights.chunks(PICK_BLOCK).enumerate() {
        let block_sum = softmax::sum(block);
        if r >= block_sum {
            r -= block_sum;
            continue;
        }
        for (i, &w) in block.iter().enumerate() {
            let w = f64::from(w);
            if r < w && w > 0.0 {
                return Some(b * PICK_BLOCK + i);
            }
            r -= w;
        }
    }
    weights.iter().rposition(|&w| w > 0.0)
}

/// Top-k, top-p and min-p over the temperature weights: the surviving `(token, weight)` with weight > 0.
/// Only top-p needs an order, and only of its nucleus: the best candidates are selected and sorted in
/// growing batches until they hold the mass, instead of sorting the whole vocabulary for every token.
fn truncate(p: &SamplingParams, weights: &[f32]) -> Vec<(u32, f32)> {
    let mut cands: Vec<(u32, f32)> = weights
        .iter()
        .enumerate()
        .filter(|&(_, &w)| w > 0.0)
        .map(|(i, &w)| (i as u32, w))
        .collect();
    let best_first = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if p.top_k > 0 && p.top_k < cands.len() {
        cands.select_nth_unstable_by(p.top_k - 1, best_first);
        cands.truncate(p.top_k);
    }
    if p.top_p < 1.0 {
        let target = f64::from(p.top_p) * cands.iter().map(|c| f64::from(c.1)).sum::<f64>();
        let mut k = cands.len().min(64);
        loop {
            if k < cands.len() {
                cands.select_nth_unstable_by(k - 1, best_first);
            }
            cands[..k].sort_unstable_by(best_first);
            let mut mass = 0.0;
            let inside = cands[..k].iter().position(|c| {
                mass += f64::from(c.1);
                mass >= target
            });
            match inside {
                Some(last) => {
                    cands.truncate(last + 1);
                    break;
                }
                None if k == cands.len() => break,
                None => k = (k * 8).min(cands.len()),
            }
        }
    }
    if p.min_p > 0.0 {
        cands.retain(|c| c.1 >= p.min_p);
    }
    cands
}

fn apply_penalties(logits: &mut [f32], p: &SamplingParams, prompt: &[u32], generated: &[u32]) {
    if p.repetition_penalty != 1.0 {
        let mut seen = vec![false; logits.len()];
        for &t in prompt.iter().chain(generated) {
            if let Some(s) = seen.get_mut(t as usize) {
                *s = true;
            }
        }
        for (l, s) in logits.iter_mut().zip(seen) {
            if s {
                *l = if *l > 0.0 { *l / p.repetition_penalty } else { *l * p.repetition_penalty };
            }
        }
    }
    if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &t in generated {
            *counts.entry(t).or_default() += 1;
        }
        for (t, n) in counts {
            if let Some(l) = logits.get_mut(t as usize) {
                *l -= p.presence_penalty + p.frequency_penalty * n as f32;
            }
        }
    }
}

/// The first index of the largest value above `−∞` (NaN never wins): a vectorised maximum, then a search.
fn argmax(logits: &[f32]) -> Option<u32> {
    let max = softmax::max(logits);
    if max == f32::NEG_INFINITY {
        return None;
    }
    logits.iter().position(|&l| l == max).map(|i| i as u32)
}

/// `log Σ exp(l)` over the logits that are not NaN (the log of softmax's denominator), shifted by the
/// maximum so that it cannot overflow.
pub fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = softmax::max(logits);
    if !max.is_finite() {
        return f64::from(max);
    }
    f64::from(max) + softmax::sum_exp(logits, max, 1.0).ln()
}

/// Natural-log softmax.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let log_z = log_sum_exp(logits);
    logits.iter().map(|&l| (f64::from(l) - log_z) as f32).collect()
}

/// The `n` most likely tokens, best first (ties: lower id first).
pub fn top_logprobs(logprobs: &[f32], n: usize) -> Vec<TokenLogprob> {
    top_tokens(logprobs, n)
        .into_iter()
        .map(|(token, logprob)| TokenLogprob { token, logprob })
        .collect()
}

/// For each row of prompt logits, the log-probability of the token that follows it (`None` past the
/// vocabulary) and the row's `top` most likely tokens, computed on all threads: evaluation scores every
/// prompt row, ~150,000 logits each, and doing it one row at a time on the caller's thread left the workers
/// idle between forward passes.
pub fn score_rows(
    rows: &[Vec<f32>],
    next_tokens: &[u32],
    top: usize,
) -> Vec<(Option<f32>, Vec<TokenLogprob>)> {
    use rayon::prelude::*;
    rows.par_iter()
        .zip(next_tokens)
        .map(|(row, &token)| {
            let log_z = log_sum_exp(row);
            let logprob = |l: f32| (f64::from(l) - log_z) as f32;
            let alternatives = top_tokens(row, top)
                .into_iter()
                .map(|(token, l)| TokenLogprob { token, logprob: logprob(l) })
                .collect();
            (row.get(token as usize).map(|&l| logprob(l)), alternatives)
        })
        .collect()
}

/// Below this many, [`top_tokens`] keeps a small sorted list while scanning instead of selecting from a
/// copy of all values.
const SCAN_TOP: usize = 32;

/// The `n` largest values that are not NaN with their indices, largest first (ties: lower index first).
fn top_tokens(values: &[f32], n: usize) -> Vec<(u32, f32)> {
    if n == 0 {
        return Vec::new();
    }
    if n <= SCAN_TOP {
        // Most values fail the first comparison against the current n-th best, so one pass costs little
        // more than reading the row.
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
        for (i, &v) in values.iter().enumerate() {
            if v.is_nan() || (best.len() == n && best.last().is_some_and(|&(_, low)| v <= low)) {
                continue;
            }
            // Ties keep the earlier index first: insert after every value >= v.
            let at = best.partition_point(|&(_, b)| b >= v);
            best.insert(at, (i as u32, v));
            best.truncate(n);
        }
        return best;
    }
    let mut all: Vec<(u32, f32)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, &v)| (i as u32, v))
        .collect();
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if n < all.len() {
        all.select_nth_unstable_by(n - 1, cmp);
        all.truncate(n);
    }
    all.sort_unstable_by(cmp);
    all
}

/// Log-probability of each prompt token given the ones before it: `rows[i]` are the logits after
/// `tokens[..=i]` (a step with [`crate::batch::LogitsWanted::All`]), so the result has `tokens.len() - 1`
/// entries, for `tokens[1..]`. This is what multiple-choice evaluation sums.
pub fn prompt_logprobs(rows: &[Vec<f32>], tokens: &[u32]) -> Result<Vec<f32>> {
    if rows.len() + 1 < tokens.len() {
        return Err(EngineError::InvalidRequest(format!(
            "{} logit rows cannot score {} tokens",
            rows.len(),
            tokens.len()
        )));
    }
    tokens
        .iter()
        .skip(1)
        .zip(rows)
        .map(|(&t, row)| {
            log_softmax(row).get(t as usize).copied().ok_or_else(|| {
                EngineError::InvalidRequest(format!("token id {t} outside the vocabulary"))
            })
        })
        .collect()
}

/// Holds back streamed text that might be the start of a stop string, and cuts exactly before the first stop.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    stopped: bool,
}

/// What to do with the text after one [`StopMatcher::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutcome {
    /// Text that is certainly output (never contains any part of a stop string).
    pub emit: String,
    /// A stop string was reached: generation ends and nothing after `emit` is output.
    pub stopped: bool,
}

impl StopMatcher {
    /// Matches these stop strings (empty ones are ignored).
    pub fn new(stops: &[String]) -> StopMatcher {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            stopped: false,
        }
    }

    /// Adds newly decoded text.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stopped {
            return StopOutcome { emit: String::new(), stopped: true };
        }
        self.held.push_str(text);
        let first_stop = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first_stop {
            self.stopped = true;
            let emit = self.held[..at].to_owned();
            self.held.clear();
            return StopOutcome { emit, stopped: true };
        }
        // Keep the longest tail that is a proper prefix of some stop string.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| self.stops.iter().any(|s| s.starts_with(&self.held[i..])))
            .unwrap_or(self.held.len());
        let emit = self.held[..keep].to_owned();
        self.held.drain(..keep);
        StopOutcome { emit, stopped: false }
    }

    /// Ends the stream: returns text still held back (it did not become a stop string).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_cut_exactly_across_pieces() {
        let stops = vec!["END".to_owned(), "\n\n".to_owned()];
        let check = |pieces: &[&str], want: &str, want_stop: bool| {
            let mut m = StopMatcher::new(&stops);
            let mut out = String::new();
            let mut stopped = false;
            for p in pieces {
                let o = m.push(p);
                out.push_str(&o.emit);
                if o.stopped {
                    stopped = true;
                    break;
                }
            }
            if !stopped {
                out.push_str(&m.finish());
            }
            assert_eq!((out.as_str(), stopped), (want, want_stop), "{pieces:?}");
        };
        check(&["hello E", "N", "D world"], "hello ", true);
        check(&["hello EN", "X"], "hello ENX", false);
        check(&["a\n", "\nb"], "a", true);
        check(&["ENDING"], "", true);
        check(&["naïve E"], "naïve E", false);
        check(&["€", "E", "ND"], "€", true);
    }

    #[test]
    fn pick_walks_the_cumulative_weights_across_blocks() {
        // Zero weights are never picked; the draw crosses block boundaries; rounding past the end falls back
        // to the last positive weight.
        let mut w = vec![0.0f32; 3 * PICK_BLOCK + 5];
        w[1] = 1.0;
        w[PICK_BLOCK + 7] = 2.0;
        w[3 * PICK_BLOCK + 2] = 0.5;
        let check = |r: f64, want: Option<usize>| assert_eq!(pick(&w, r), want, "r = {r}");
        check(0.0, Some(1));
        check(0.999, Some(1));
        check(1.0, Some(PICK_BLOCK + 7));
        check(2.999, Some(PICK_BLOCK + 7));
        check(3.0, Some(3 * PICK_BLOCK + 2));
        check(3.5, Some(3 * PICK_BLOCK + 2));
        check(10.0, Some(3 * PICK_BLOCK + 2));
        assert_eq!(pick(&[0.0; 9], 0.0), None);
    }

    #[test]
    fn top_tokens_scan_equals_a_full_sort() {
        // Coarse values give many ties (lower index must come first); NaN is never listed; −∞ only when
        // nothing better is left.
        let mut values: Vec<f32> =
            (0..5000u64).map(|i| ((i * 2_654_435_761) % 97) as f32 / 8.0).collect();
        values[17] = f32::NAN;
        values[4999] = f32::NEG_INFINITY;
        let mut sorted: Vec<(u32, f32)> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_nan())
            .map(|(i, &v)| (i as u32, v))
            .collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for n in [1, 2, 5, 20, SCAN_TOP, SCAN_TOP + 1, 200] {
            assert_eq!(top_tokens(&values, n), sorted[..n].to_vec(), "n = {n}");
        }
        assert_eq!(
            top_tokens(&[f32::NEG_INFINITY, 1.0], 2),
            vec![(1, 1.0), (0, f32::NEG_INFINITY)]
        );
        assert_eq!(top_tokens(&[f32::NAN], 3), Vec::new());
    }

    #[test]
    fn scored_rows_match_log_softmax() {
        let rows: Vec<Vec<f32>> = (0..6)
            .map(|r| (0..1000).map(|i| ((i * 37 + r * 11) % 101) as f32 * 0.07).collect())
            .collect();
        let next = [3u32, 999, 0, 5000, 7, 8];
        for ((lp, top), (row, &token)) in
            score_rows(&rows, &next, 4).iter().zip(rows.iter().zip(&next))
        {
            let want = log_softmax(row);
            assert_eq!(*lp, want.get(token as usize).copied());
            assert_eq!(*top, top_logprobs(&want, 4));
        }
    }

    #[test]
    fn held_text_is_only_a_possible_stop_prefix() {
        let mut m = StopMatcher::new(&["</s>".to_owned()]);
        assert_eq!(m.push("ab<").emit, "ab");
        assert_eq!(m.push("x").emit, "<x");
        assert_eq!(m.push("</").emit, "");
        assert_eq!(m.finish(), "</");
    }
}
