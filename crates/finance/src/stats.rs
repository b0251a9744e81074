//! Return statistics shared by portfolio diagnosis and allocation: returns from prices, covariance,
//! drawdown, quantiles and the normal quantile function.
//!
//! Statistics are `f64` (they are estimates, not money); every function checks its input so that no
//! NaN leaves this module unannounced.

use crate::error::{FinanceError, Result};
use crate::linalg::Matrix;

/// Trading days per year, used to annualise daily statistics (the PyPortfolioOpt default).
pub const TRADING_DAYS: f64 = 252.0;

/// Simple returns `p[t]/p[t-1] - 1` of one price series; a non-positive price is an error.
pub fn simple_returns(prices: &[f64], field: &str) -> Result<Vec<f64>> {
    if let Some(bad) = prices.iter().position(|p| !p.is_finite() || *p <= 0.0) {
        return Err(FinanceError::invalid(
            format!("{field}[{bad}]"),
            format!("price {} must be a positive number", prices[bad]),
        ));
    }
    Ok(prices.windows(2).map(|w| w[1] / w[0] - 1.0).collect())
}

/// The arithmetic mean (0 for an empty slice).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// The sample covariance (divisor n − 1) of two equally long series.
pub fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (ma, mb) = (mean(&a[..n]), mean(&b[..n]));
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (n - 1) as f64
}

/// The sample standard deviation.
pub fn std_dev(values: &[f64]) -> f64 {
    covariance(values, values).sqrt()
}

/// The sample covariance matrix of return columns (one `Vec` per asset).
pub fn covariance_matrix(columns: &[Vec<f64>]) -> Matrix {
    let n = columns.len();
    let mut cov = Matrix::zeros(n, n);
    for i in 0..n {
        for j in 0..=i {
            let c = covariance(&columns[i], &columns[j]);
            cov.set(i, j, c);
            cov.set(j, i, c);
        }
    }
    cov
}

/// The correlation matrix from a covariance matrix; a zero-variance asset is an error naming it.
pub fn correlation_matrix(cov: &Matrix, names: &[String]) -> Result<Matrix> {
    let n = cov.rows();
    let sd: Vec<f64> = (0..n).map(|i| cov.get(i, i).sqrt()).collect();
    if let Some(flat) = sd.iter().position(|s| *s <= 0.0 || !s.is_finite()) {
        return Err(FinanceError::NoSolution(format!(
            "asset {} has zero variance, so its correlation is undefined",
            names.get(flat).map_or("?", String::as_str)
        )));
    }
    let mut corr = Matrix::zeros(n, n);
    for i in 0..n {
        for j in 0..n {
            corr.set(i, j, cov.get(i, j) / (sd[i] * sd[j]));
        }
    }
    Ok(corr)
}

/// Compound annual growth rate from daily returns: `∏(1+r)^(252/n) − 1` (PyPortfolioOpt's
/// `mean_historical_return` with compounding).
pub fn annualised_growth(returns: &[f64]) -> f64 {
    let growth: f64 = returns.iter().map(|r| 1.0 + r).product();
    growth.powf(TRADING_DAYS / returns.len().max(1) as f64) - 1.0
}

/// The largest peak-to-trough fall of a value path, as a positive fraction, with the peak and trough
/// indices.
pub fn max_drawdown(values: &[f64]) -> (f64, usize, usize) {
    let (mut peak, mut peak_at) = (f64::MIN, 0);
    let mut worst = (0.0, 0, 0);
    for (t, &v) in values.iter().enumerate() {
        if v > peak {
            peak = v;
            peak_at = t;
        }
        let fall = if peak > 0.0 { 1.0 - v / peak } else { 0.0 };
        if fall > worst.0 {
            worst = (fall, peak_at, t);
        }
    }
    worst
}

/// Historical value-at-risk and conditional VaR at `confidence` (e.g. 0.95) as positive losses:
/// the k = ⌈(1−c)·n⌉ worst returns, VaR the k-th worst, CVaR their mean.
pub fn historical_var(returns: &[f64], confidence: f64) -> (f64, f64) {
    let mut sorted = returns.to_vec();
    sorted.sort_by(f64::total_cmp);
    let k =
        (((1.0 - confidence) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    let tail = &sorted[..k.min(sorted.len())];
    (-tail.last().copied().unwrap_or(0.0), -mean(tail))
}

/// The standard normal density.
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The standard normal quantile function (Acklam's rational approximation refined by one Halley
/// step; absolute error below 1e-12 on (0, 1)).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383_577_518_672_69e2,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let low = 0.02425;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let e = normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The standard normal distribution function, via the complementary error function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The complementary error function: the Chebyshev fit of Numerical Recipes (3rd ed., `Erf::erfccheb`),
/// accurate to about 1e-16, which the Halley step in [`normal_quantile`] needs.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 2.0 / (2.0 + z);
    let ty = 4.0 * t - 2.0;
    const COF: [f64; 28] = [
        -1.3026537197817094,
        6.419_697_923_564_902e-1,
        1.9476473204185836e-2,
        -9.561_514_786_808_63e-3,
        -9.46595344482036e-4,
        3.66839497852761e-4,
        4.2523324806907e-5,
        -2.0278578112534e-5,
        -1.624290004647e-6,
        1.303655835580e-6,
        1.5626441722e-8,
        -8.5238095915e-8,
        6.529054439e-9,
        5.059343495e-9,
        -9.91364156e-10,
        -2.27365122e-10,
        9.6467911e-11,
        2.394038e-12,
        -6.886027e-12,
        8.94487e-13,
        3.13092e-13,
        -1.12708e-13,
        3.81e-16,
        7.106e-15,
        -1.523e-15,
        -9.4e-17,
        1.21e-16,
        -2.8e-17,
    ];
    let (mut d, mut dd) = (0.0, 0.0);
    for &c in COF[1..].iter().rev() {
        let tmp = d;
        d = ty * d - dd + c;
        dd = tmp;
    }
    let value = t * (-z * z + 0.5 * (COF[0] + ty * d) - dd).exp();
    if x >= 0.0 { value } else { 2.0 - value }
}
