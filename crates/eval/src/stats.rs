//! Statistics: seeded bootstrap confidence intervals and paired tests (paired bootstrap, exact McNemar)
//! that say whether the difference between two runs on the same samples is real.

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Mean of `values` (0 for none).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// Percentile bootstrap 95% interval of the mean, from `rounds` resamples drawn with `seed`.
pub fn bootstrap_ci(values: &[f64], rounds: usize, seed: u64) -> (f64, f64) {
    if values.len() < 2 {
        let m = mean(values);
        return (m, m);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let n = values.len();
    let mut means: Vec<f64> = (0..rounds)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (rounds - 1) as f64).round() as usize).min(rounds - 1)];
    (at(0.025), at(0.975))
}

/// Two-sided exact McNemar p-value from the discordant counts: `b` = only the first run right, `c` =
/// only the second right.
pub fn mcnemar(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // P(X <= k) for X ~ Binomial(n, 1/2), summed in log space to stay finite for large n.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0;
    let mut tail = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Paired comparison of per-sample scores `a` and `b` (same samples, same order).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Paired {
    /// Samples compared.
    pub n: usize,
    /// Mean of b − a.
    pub diff: f64,
    /// Paired-bootstrap 95% interval of the difference.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Exact McNemar p-value when both score vectors are 0/1.
    pub mcnemar_p: Option<f64>,
    /// Whether the interval excludes zero.
    pub significant: bool,
}

/// Compares paired scores: paired bootstrap of the mean difference, plus McNemar for 0/1 scores.
pub fn paired(a: &[f64], b: &[f64], seed: u64) -> Paired {
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let (lo, hi) = bootstrap_ci(&diffs, 2000, seed);
    let binary = a.iter().chain(b).all(|v| *v == 0.0 || *v == 1.0);
    let mcnemar_p = binary.then(|| {
        let only_a = a.iter().zip(b).filter(|(x, y)| **x == 1.0 && **y == 0.0).count();
        let only_b = a.iter().zip(b).filter(|(x, y)| **x == 0.0 && **y == 1.0).count();
        mcnemar(only_a, only_b)
    });
    Paired {
        n: diffs.len(),
        diff: mean(&diffs),
        lo,
        hi,
        mcnemar_p,
        significant: lo > 0.0 || hi < 0.0,
    }
}
