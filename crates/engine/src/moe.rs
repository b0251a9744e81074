//! Mixture-of-experts feed-forward layers (Shazeer et al. 2017; DeepSeek-V3's sigmoid router with a
//! selection-only bias and group-limited routing, which Bailing v2 uses).
//!
//! The CPU path routes the whole step first, then groups its tokens by expert so that every active expert runs
//! one quantized product over all the tokens sent to it (prefill) and decode runs the token's few experts
//! together in one pass over the thread pool. Weights stay where the loader put them: one packed matrix per
//! expert, gate and up stacked.

use crate::config::{Gating, MoeConfig};
use crate::error::{EngineError, Result};
use crate::kernels::{PackedMatrix, silu_mul};
use crate::layers::SwiGluMlp;
use crate::weights::{Linear, StackedLinear, Weights};

/// Routing recorded by a traced forward pass: one entry per MoE layer, each `top-k` `(expert, weight)` pairs
/// per token, token-major.
pub type Routes = Vec<Vec<(u32, f32)>>;

/// Picks the experts of one token: `(expert, weight)` pairs, `cfg.n_experts_used` of them, appended to `out`.
///
/// `logits` are the router's outputs for the token; `bias` (Bailing v2's `expert_bias`) shifts which experts
/// win but not their weights. With groups, only experts in the `groups_used` groups whose two best (biased)
/// scores sum highest can be chosen.
pub fn select_experts(
    logits: &[f32],
    bias: Option<&[f32]>,
    cfg: &MoeConfig,
    out: &mut Vec<(u32, f32)>,
) {
    let n = logits.len();
    let scores: Vec<f32> = match cfg.gating {
        Gating::Softmax => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
            let sum: f32 = exp.iter().sum();
            exp.into_iter().map(|e| e / sum).collect()
        }
        Gating::Sigmoid => logits.iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect(),
    };
    let mut choice: Vec<f32> = match bias {
        Some(b) => scores.iter().zip(b).map(|(s, b)| s + b).collect(),
        None => scores.clone(),
    };
    if cfg.n_groups > 1 && cfg.groups_used < cfg.n_groups {
        let per_group = n / cfg.n_groups;
        let group_score = |g: usize| {
            let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
            for &s in &choice[g * per_group..(g + 1) * per_group] {
                if s > a {
                    b = a;
                    a = s;
                } else if s > b {
                    b = s;
                }
            }
            if per_group > 1 { a + b } else { a }
        };
        let mut groups: Vec<(usize, f32)> =
            (0..cfg.n_groups).map(|g| (g, group_score(g))).collect();
        groups.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        for &(g, _) in &groups[cfg.groups_used..] {
            choice[g * per_group..(g + 1) * per_group].fill(f32::NEG_INFINITY);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    let k = cfg.n_experts_used.min(n);
    order.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
        choice[b].total_cmp(&choice[a]).then(a.cmp(&b))
    });
    let chosen = &mut order[..k];
    chosen.sort_by(|&a, &b| choice[b].total_cmp(&choice[a]).then(a.cmp(&b)));
    let sum: f32 = chosen.iter().map(|&e| scores[e]).sum();
    let norm = if cfg.norm_topk_prob && sum > 0.0 { 1.0 / sum } else { 1.0 };
    out.extend(chosen.iter().map(|&e| (e as u32, scores[e] * norm * cfg.routed_scaling_factor)));
}

/// The router: a linear map from the hidden state to one logit per expert, plus the selection bias.
#[derive(Debug, Clone)]
pub struct Router {
    gate: Linear,
    bias: Option<Vec<f32>>,
    cfg: MoeConfig,
}

impl Router {
    /// Every token's experts: `cfg.n_experts_used` `(expert, weight)` pairs per token, token-major.
    pub fn route(&self, x: &[f32], n: usize) -> Result<Vec<(u32, f32)>> {
        let logits = self.gate.forward(x, n)?;
        let mut routes = Vec::with_capacity(n * self.cfg.n_experts_used);
        for row in logits.chunks(self.cfg.n_experts) {
            select_experts(row, self.bias.as_deref(), &self.cfg, &mut routes);
        }
        Ok(routes)
    }

    /// Replaces the selection bias (the expert-bias test; also lets a deployment pin routing).
    pub fn set_bias(&mut self, bias: Vec<f32>) -> Result<()> {
        if bias.len() != self.cfg.n_experts {
            return Err(EngineError::InvalidRequest(format!(
                "expert bias of {} values for {} experts",
                bias.len(),
                self.cfg.n_experts
            )));
        }
        self.bias = Some(bias);
        Ok(())
    }
}

/// One routed expert: `down(silu(gate(x)) * up(x))` with gate and up stacked.
#[derive(Debug, Clone)]
struct Expert {
    gate_up: StackedLinear,
    down: Linear,
}

/// A sparse MoE feed-forward layer: routed experts plus optional always-on shared experts.
#[derive(Debug, Clone)]
pub struct SparseMoe {
    router: Router,
    experts: Vec<Expert>,
    shared: Option<SwiGluMlp>,
    hidden: usize,
    expert_ff: usize,
}

impl SparseMoe {
    /// Loads layer `layer`'s router (`mlp.gate`, with `mlp.gate.expert_bias` when present), its routed experts
    /// and its shared experts (`mlp.shared_experts`, when `cfg.n_shared_experts > 0`).
    pub fn load(w: &Weights, layer: usize, hidden: usize, cfg: &MoeConfig) -> Result<SparseMoe> {
        let p = format!("model.layers.{layer}.mlp");
        let (n, ff) = (cfg.n_experts, cfg.expert_intermediate_size);
        let gate = w.linear(&format!("{p}.gate"), n, hidden, false)?;
        let bias_name = format!("{p}.gate.expert_bias");
        let bias = if w.contains(&bias_name) { Some(w.vector(&bias_name, n)?) } else { None };
        let gates = w.expert_linears(layer, "gate_proj", n, ff, hidden)?;
        let ups = w.expert_linears(layer, "up_proj", n, ff, hidden)?;
        let downs = w.expert_linears(layer, "down_proj", n, hidden, ff)?;
        let experts = gates
            .into_iter()
            .zip(ups)
            .zip(downs)
            .map(|((g, u), down)| Expert { gate_up: StackedLinear::new(vec![g, u]), down })
            .collect();
        let shared = if cfg.n_shared_experts > 0 {
            Some(SwiGluMlp::load(
                w,
                &format!("{p}.shared_experts"),
                hidden,
                ff * cfg.n_shared_experts,
            )?)
        } else {
            None
        };
        Ok(SparseMoe {
            router: Router { gate, bias, cfg: cfg.clone() },
            experts,
            shared,
            hidden,
            expert_ff: ff,
        })
    }

    /// The router (to inspect or re-bias routing).
    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    /// The experts each token of `x` (`[n, hidden]`) would use, token-major.
    pub fn route(&self, x: &[f32], n: usize) -> Result<Vec<(u32, f32)>> {
        self.router.route(x, n)
    }

    /// Applies the layer to `x` (`[n, hidden]`).
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let h = self.hidden;
        let k = self.router.cfg.n_experts_used;
        let routes = self.router.route(x, n)?;
        // Tokens per expert, with their routing weights.
        let mut by_expert: Vec<Vec<(usize, f32)>> = vec![Vec::new(); self.experts.len()];
        for (t, token_routes) in routes.chunks(k).enumerate() {
            for &(e, weight) in token_routes {
                by_expert[e as usize].push((t, weight));
            }
        }
        let mut out = match &self.shared {
            Some(shared) => shared.forward(x, n)?,
            None => vec![0.0; n * h],
        };
        let active: Vec<(usize, &[(usize, f32)])> = by_expert
            .iter()
            .enumerate()
            .filter(|(_, tokens)| !tokens.is_empty())
            .map(|(e, tokens)| (e, tokens.as_slice()))
            .collect();
        let ys = self.run_experts(x, &active)?;
        for ((_, tokens), y) in active.iter().zip(&ys) {
            for (&(t, weight), y_row) in tokens.iter().zip(y.chunks(h)) {
                for (o, v) in out[t * h..(t + 1) * h].iter_mut().zip(y_row) {
                    *o += weight * v;
                }
            }
        }
        Ok(out)
    }

    /// Each active expert's outputs for its tokens: `[tokens, hidden]` per expert, in `active` order.
    fn run_experts<'a>(
        &'a self,
        x: &[f32],
        active: &[(usize, &[(usize, f32)])],
    ) -> Result<Vec<Vec<f32>>> {
        let (h, ff) = (self.hidden, self.expert_ff);
        let inputs: Vec<Vec<f32>> = active
            .iter()
            .map(|(_, tokens)| {
                tokens.iter().flat_map(|&(t, _)| x[t * h..(t + 1) * h].iter().copied()).collect()
            })
            .collect();
        let counts: Vec<usize> = active.iter().map(|(_, tokens)| tokens.len()).collect();
        // Packed experts run as one batch of products per projection (one fork-join for all experts);
        // other weight types (F32/F16 fixtures, HF checkpoints) one by one.
        let packed: Option<Vec<(&PackedMatrix, &PackedMatrix)>> = active
            .iter()
            .map(|&(e, _)| {
                let ex = &self.experts[e];
                Some((ex.gate_up.packed()?, ex.down.packed()?))
            })
            .collect();
        let Some(packed) = packed else {
            return active
                .iter()
                .zip(&inputs)
                .zip(&counts)
                .map(|((&(e, _), xe), &m)| {
                    let ex = &self.experts[e];
                    let [mut gate, up]: [Vec<f32>; 2] =
                        ex.gate_up.forward(xe, m)?.try_into().map_err(|_| {
                            EngineError::Config("internal: expert gate/up lost a part".to_owned())
                        })?;
                    silu_mul(&mut gate, &up);
                    ex.down.forward(&gate, m)
                })
                .collect();
        };
        // One batched product per projection: `pick` chooses the matrix, `xs` the inputs, `width` the outputs.
        let batched = |pick: fn(&(&'a PackedMatrix, &'a PackedMatrix)) -> &'a PackedMatrix,
                       xs: &[Vec<f32>],
                       width: usize|
         -> Result<Vec<Vec<f32>>> {
            let mut outs: Vec<Vec<f32>> = counts.iter().map(|&m| vec![0.0; m * width]).collect();
            let jobs: Vec<(&PackedMatrix, &[f32], usize)> = packed
                .iter()
                .zip(xs)
                .zip(&counts)
                .map(|((p, x), &m)| (pick(p), x.as_slice(), m))
                .collect();
            PackedMatrix::matmul_many(&jobs, &mut outs)?;
            Ok(outs)
        };
        let gate_up = batched(|p| p.0, &inputs, 2 * ff)?;
        let acts: Vec<Vec<f32>> = gate_up
            .iter()
            .zip(&counts)
            .map(|(gu, &m)| {
                let mut gate = Vec::with_capacity(m * ff);
                let mut up = Vec::with_capacity(m * ff);
                for row in gu.chunks(2 * ff) {
                    gate.extend_from_slice(&row[..ff]);
                    up.extend_from_slice(&row[ff..]);
                }
                silu_mul(&mut gate, &up);
                gate
            })
            .collect();
        let ys = batched(|p| p.1, &acts, h)?;
        Ok(ys)
    }

    /// Bytes of weights the average token reads: router, shared experts and `n_experts_used` experts.
    pub fn weight_bytes(&self) -> usize {
        let per_expert = self
            .experts
            .iter()
            .map(|e| e.gate_up.weight_bytes() + e.down.weight_bytes())
            .sum::<usize>()
            / self.experts.len().max(1);
        self.router.gate.weight_bytes()
            + self.shared.as_ref().map_or(0, SwiGluMlp::weight_bytes)
            + per_expert * self.router.cfg.n_experts_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(gating: Gating, n_groups: usize, groups_used: usize, k: usize) -> MoeConfig {
        MoeConfig {
            n_experts: 8,
            n_experts_used: k,
            n_shared_experts: 0,
            expert_intermediate_size: 4,
            first_dense_layers: 0,
            gating,
            n_groups,
            groups_used,
            norm_topk_prob: true,
            routed_scaling_factor: 1.0,
        }
    }

    fn check(logits: &[f32], bias: Option<&[f32]>, cfg: &MoeConfig, experts: &[u32]) {
        let mut out = Vec::new();
        select_experts(logits, bias, cfg, &mut out);
        let got: Vec<u32> = out.iter().map(|r| r.0).collect();
        assert_eq!(got, experts, "logits {logits:?} bias {bias:?}");
        if cfg.norm_topk_prob {
            let sum: f32 = out.iter().map(|r| r.1).sum();
            assert!((sum - cfg.routed_scaling_factor).abs() < 1e-5, "weights sum to {sum}");
        }
    }

    const LOGITS: [f32; 8] = [0.1, 2.0, -1.0, 0.5, 1.5, 0.0, 3.0, -2.0];

    #[test]
    fn softmax_top_k_picks_the_largest_logits() {
        check(&LOGITS, None, &cfg(Gating::Softmax, 1, 1, 2), &[6, 1]);
        check(&LOGITS, None, &cfg(Gating::Softmax, 1, 1, 3), &[6, 1, 4]);
    }

    #[test]
    fn softmax_weights_renormalise_over_the_chosen() {
        let mut out = Vec::new();
        select_experts(&LOGITS, None, &cfg(Gating::Softmax, 1, 1, 2), &mut out);
        let (a, b) = (3.0f32.exp(), 2.0f32.exp());
        assert!((out[0].1 - a / (a + b)).abs() < 1e-6);
        let mut raw = cfg(Gating::Softmax, 1, 1, 2);
        raw.norm_topk_prob = false;
        out.clear();
        select_experts(&LOGITS, None, &raw, &mut out);
        let total: f32 = LOGITS.iter().map(|l| l.exp()).sum();
        assert!((out[0].1 - a / total).abs() < 1e-6);
    }

    #[test]
    fn bias_changes_the_choice_but_not_the_weights() {
        let c = cfg(Gating::Sigmoid, 1, 1, 2);
        let bias = [0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        check(&LOGITS, Some(&bias), &c, &[2, 6]);
        let mut out = Vec::new();
        let mut unnorm = c.clone();
        unnorm.norm_topk_prob = false;
        select_experts(&LOGITS, Some(&bias), &unnorm, &mut out);
        let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
        assert!((out[0].1 - sigmoid(-1.0)).abs() < 1e-6, "bias leaked into the weight");
    }

    #[test]
    fn groups_limit_the_choice_to_the_best_groups() {
        // Groups of two: {0,1} {2,3} {4,5} {6,7}; sigmoid is monotone, so group score order follows logit sums:
        // {0,1}: 0.1+2.0, {2,3}: -1+0.5, {4,5}: 1.5+0, {6,7}: 3-2. Best two groups: {0,1} and {4,5}.
        check(&LOGITS, None, &cfg(Gating::Sigmoid, 4, 2, 3), &[1, 4, 0]);
        // Without groups, expert 6 (the single best) would win.
        check(&LOGITS, None, &cfg(Gating::Sigmoid, 1, 1, 3), &[6, 1, 4]);
    }

    #[test]
    fn scaling_multiplies_the_renormalised_weights() {
        let mut c = cfg(Gating::Sigmoid, 1, 1, 2);
        c.routed_scaling_factor = 2.5;
        check(&LOGITS, None, &c, &[6, 1]);
    }
}
