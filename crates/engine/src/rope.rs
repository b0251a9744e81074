//! Rotary position embeddings (Su et al. 2021, "RoFormer") with the variants configs ask for: base theta,
//! NeoX vs interleaved pairing, partial rotary dimension, and linear / YaRN / Llama 3 frequency scaling.
//!
//! Positions differ per token in a batched step (sequences at different depths), so cos/sin are computed per
//! step for the step's positions, once for all layers, and applied in place to the f32 Q/K rows.
//! References: HF `modeling_rope_utils.py`, llama.cpp `ggml_rope_ext`.

use crate::config::{RopeConfig, RopeScaling, RopeStyle};

/// Inverse frequencies and output scale derived from a [`RopeConfig`].
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    attention_factor: f32,
    rotary_dim: usize,
    style: RopeStyle,
}

/// cos/sin tables for one step: `[n_tokens, rotary_dim / 2]`.
#[derive(Debug, Clone)]
pub struct RopeTables {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    /// Precomputes the frequencies.
    pub fn new(cfg: &RopeConfig) -> Rope {
        let dim = cfg.rotary_dim;
        let base = f64::from(cfg.theta);
        let plain: Vec<f64> =
            (0..dim / 2).map(|i| base.powf(-((2 * i) as f64) / dim as f64)).collect();
        let mut attention_factor = 1.0f32;
        let inv_freq: Vec<f64> = match cfg.scaling {
            RopeScaling::None => plain,
            RopeScaling::Linear { factor } => plain.iter().map(|f| f / f64::from(factor)).collect(),
            RopeScaling::Yarn {
                factor,
                original_max_position,
                beta_fast,
                beta_slow,
                attention_factor: af,
            } => {
                attention_factor = af;
                let factor = f64::from(factor);
                let correction_dim = |rotations: f64| {
                    dim as f64
                        * (original_max_position as f64 / (rotations * 2.0 * std::f64::consts::PI))
                            .ln()
                        / (2.0 * base.ln())
                };
                let low = correction_dim(f64::from(beta_fast)).floor().max(0.0);
                let high = correction_dim(f64::from(beta_slow)).ceil().min(dim as f64 - 1.0);
                let high = if low == high { high + 0.001 } else { high };
                plain
                    .iter()
                    .enumerate()
                    .map(|(i, &extrapolation)| {
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrapolation_weight = 1.0 - ramp;
                        extrapolation / factor * (1.0 - extrapolation_weight)
                            + extrapolation * extrapolation_weight
                    })
                    .collect()
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position,
            } => {
                let (factor, lo, hi) =
                    (f64::from(factor), f64::from(low_freq_factor), f64::from(high_freq_factor));
                let old = original_max_position as f64;
                let low_wavelen = old / lo;
                let high_wavelen = old / hi;
                plain
                    .iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - lo) / (hi - lo);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        };
        Rope {
            inv_freq: inv_freq.into_iter().map(|f| f as f32).collect(),
            attention_factor,
            rotary_dim: dim,
            style: cfg.style,
        }
    }

    /// cos/sin for each position of a step.
    pub fn tables(&self, positions: &[usize]) -> RopeTables {
        let half = self.rotary_dim / 2;
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &self.inv_freq {
                // f64 keeps the angle exact at 32K positions; f32 would lose ~3 digits.
                let angle = p as f64 * f64::from(f);
                cos.push(angle.cos() as f32 * self.attention_factor);
                sin.push(angle.sin() as f32 * self.attention_factor);
            }
        }
        RopeTables { cos, sin, half }
    }

    /// Rotates `x`, laid out `[n_tokens, n_heads, head_dim]`, in place.
    pub fn apply(&self, x: &mut [f32], n_heads: usize, head_dim: usize, tables: &RopeTables) {
        let half = tables.half;
        if half == 0 {
            return;
        }
        for (t, token) in x.chunks_mut(n_heads * head_dim).enumerate() {
            let cos = &tables.cos[t * half..(t + 1) * half];
            let sin = &tables.sin[t * half..(t + 1) * half];
            for head in token.chunks_mut(head_dim) {
                match self.style {
                    RopeStyle::NeoX => {
                        let (a, b) = head[..2 * half].split_at_mut(half);
                        for i in 0..half {
                            let (x1, x2) = (a[i], b[i]);
                            a[i] = x1 * cos[i] - x2 * sin[i];
                            b[i] = x2 * cos[i] + x1 * sin[i];
                        }
                    }
                    RopeStyle::Interleaved => {
                        for i in 0..half {
                            let (x1, x2) = (head[2 * i], head[2 * i + 1]);
                            head[2 * i] = x1 * cos[i] - x2 * sin[i];
                            head[2 * i + 1] = x2 * cos[i] + x1 * sin[i];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(style: RopeStyle, rotary_dim: usize, scaling: RopeScaling) -> Rope {
        Rope::new(&RopeConfig { theta: 10_000.0, rotary_dim, style, scaling })
    }

    #[test]
    fn position_zero_is_identity_and_norm_is_kept() {
        let r = rope(RopeStyle::NeoX, 8, RopeScaling::None);
        let mut x: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        let orig = x.clone();
        r.apply(&mut x, 1, 8, &r.tables(&[0]));
        assert_eq!(x, orig);
        r.apply(&mut x, 1, 8, &r.tables(&[1234]));
        let n0: f32 = orig.iter().map(|v| v * v).sum();
        let n1: f32 = x.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-3);
    }

    #[test]
    fn partial_rotary_leaves_tail_untouched() {
        let r = rope(RopeStyle::Interleaved, 4, RopeScaling::None);
        let mut x: Vec<f32> = (0..8).map(|i| i as f32 + 1.0).collect();
        r.apply(&mut x, 1, 8, &r.tables(&[7]));
        assert_eq!(&x[4..], &[5.0, 6.0, 7.0, 8.0]);
        assert_ne!(&x[..4], &[1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn neox_equals_interleaved_after_permutation() {
        // The GGUF converter permutes rows so that interleaved RoPE on permuted weights equals NeoX on HF weights.
        let neox = rope(RopeStyle::NeoX, 8, RopeScaling::None);
        let inter = rope(RopeStyle::Interleaved, 8, RopeScaling::None);
        let x: Vec<f32> = (0..8).map(|i| (i as f32 * 0.37).sin()).collect();
        let perm: Vec<f32> = (0..4).flat_map(|i| [x[i], x[i + 4]]).collect();
        let (mut a, mut b) = (x.clone(), perm);
        neox.apply(&mut a, 1, 8, &neox.tables(&[5]));
        inter.apply(&mut b, 1, 8, &inter.tables(&[5]));
        let back: Vec<f32> =
            (0..8).map(|j| if j < 4 { b[2 * j] } else { b[2 * (j - 4) + 1] }).collect();
        for (u, v) in a.iter().zip(&back) {
            assert!((u - v).abs() < 1e-6);
        }
    }

    #[test]
    fn linear_scaling_divides_positions() {
        let scaled = rope(RopeStyle::NeoX, 8, RopeScaling::Linear { factor: 4.0 });
        let plain = rope(RopeStyle::NeoX, 8, RopeScaling::None);
        let (a, b) = (scaled.tables(&[40]), plain.tables(&[10]));
        for (u, v) in a.cos.iter().zip(&b.cos) {
            assert!((u - v).abs() < 1e-5);
        }
    }

    #[test]
    fn yarn_keeps_high_frequencies_and_interpolates_low_ones() {
        let yarn = Rope::new(&RopeConfig {
            theta: 10_000.0,
            rotary_dim: 64,
            style: RopeStyle::NeoX,
            scaling: RopeScaling::Yarn {
                factor: 4.0,
                original_max_position: 4096,
                beta_fast: 32.0,
                beta_slow: 1.0,
                attention_factor: 1.0,
            },
        });
        let plain = rope(RopeStyle::NeoX, 64, RopeScaling::None);
        assert!((yarn.inv_freq[0] - plain.inv_freq[0]).abs() < 1e-7);
        let last = plain.inv_freq.len() - 1;
        assert!((yarn.inv_freq[last] - plain.inv_freq[last] / 4.0).abs() < 1e-9);
    }
}
