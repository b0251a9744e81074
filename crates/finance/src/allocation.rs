//! Asset allocation: minimum variance, maximum Sharpe, efficient return/risk, the frontier, risk parity,
//! hierarchical risk parity and Black-Litterman, with long-only and per-asset bounds.
//!
//! The mean-variance problems share one solver for `min ½wᵀΣw − t·μᵀw` subject to `Σw = 1` and
//! `l ≤ w ≤ u`: accelerated projected gradient finds the active set, then an exact KKT solve on the
//! free assets polishes it (primal-dual active-set steps until the multipliers have the right signs).
//! Along the frontier the solution is piecewise linear in `t`, so targets (a return, a volatility, the
//! Sharpe maximum) are found by bisection and then solved in closed form on the final segment.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{FinanceError, Result, parse_params};
use crate::linalg::{Matrix, dot};
use crate::prices::PriceHistory;
use crate::stats::{self, TRADING_DAYS};

/// Expected returns and covariance (both annualised) over named assets, with per-asset bounds.
#[derive(Debug, Clone)]
pub struct Universe {
    /// Asset names.
    pub assets: Vec<String>,
    /// Expected annual returns.
    pub mu: Vec<f64>,
    /// Annualised covariance matrix.
    pub cov: Matrix,
    /// Lower weight bounds.
    pub lower: Vec<f64>,
    /// Upper weight bounds.
    pub upper: Vec<f64>,
}

const TOL: f64 = 1e-10;

impl Universe {
    /// A universe with long-only bounds `[0, 1]`; checks the covariance matrix.
    pub fn new(assets: Vec<String>, mu: Vec<f64>, cov: Matrix) -> Result<Universe> {
        let n = assets.len();
        if n == 0 {
            return Err(FinanceError::invalid("assets", "no assets: the portfolio is empty"));
        }
        if mu.len() != n || cov.rows() != n || cov.cols() != n {
            return Err(FinanceError::invalid(
                "covariance",
                format!(
                    "{n} assets but {} expected returns and a {}x{} covariance",
                    mu.len(),
                    cov.rows(),
                    cov.cols()
                ),
            ));
        }
        if let Some(bad) = mu.iter().position(|m| !m.is_finite()) {
            return Err(FinanceError::invalid(
                format!("expected_returns.{}", assets[bad]),
                "is not a finite number",
            ));
        }
        cov.check_covariance("covariance")?;
        Ok(Universe { lower: vec![0.0; n], upper: vec![1.0; n], assets, mu, cov })
    }

    /// Sets the same bounds for every asset.
    pub fn with_bounds(mut self, lower: f64, upper: f64) -> Result<Universe> {
        self.lower = vec![lower; self.assets.len()];
        self.upper = vec![upper; self.assets.len()];
        self.check_bounds()?;
        Ok(self)
    }

    fn check_bounds(&self) -> Result<()> {
        for (i, asset) in self.assets.iter().enumerate() {
            let (l, u) = (self.lower[i], self.upper[i]);
            if !(l.is_finite() && u.is_finite()) || l > u {
                return Err(FinanceError::invalid(
                    format!("bounds.{asset}"),
                    format!("[{l}, {u}] is not an interval"),
                ));
            }
        }
        let (low, high): (f64, f64) = (self.lower.iter().sum(), self.upper.iter().sum());
        if low > 1.0 + 1e-12 || high < 1.0 - 1e-12 {
            return Err(FinanceError::NoSolution(format!(
                "bounds are infeasible: lower bounds sum to {low}, upper bounds to {high}, but weights must sum to 1"
            )));
        }
        Ok(())
    }

    /// Annualised return, volatility and Sharpe ratio of `w`.
    pub fn performance(&self, w: &[f64], risk_free: f64) -> (f64, f64, f64) {
        let ret = dot(&self.mu, w);
        let vol = self.cov.quad(w).max(0.0).sqrt();
        let sharpe = if vol > 0.0 { (ret - risk_free) / vol } else { 0.0 };
        (ret, vol, sharpe)
    }

    /// Projects `v` onto `{Σw = 1, l ≤ w ≤ u}` by bisection on the shift.
    fn project(&self, v: &[f64]) -> Vec<f64> {
        let clip = |shift: f64| -> Vec<f64> {
            v.iter()
                .enumerate()
                .map(|(i, x)| (x - shift).clamp(self.lower[i], self.upper[i]))
                .collect()
        };
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (i, x) in v.iter().enumerate() {
            lo = lo.min(x - self.upper[i]);
            hi = hi.max(x - self.lower[i]);
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if clip(mid).iter().sum::<f64>() > 1.0 { lo = mid } else { hi = mid }
        }
        clip(0.5 * (lo + hi))
    }

    fn lipschitz(&self) -> f64 {
        let n = self.assets.len();
        let mut v = vec![1.0 / (n as f64).sqrt(); n];
        let mut lambda = 0.0;
        for _ in 0..200 {
            let w = self.cov.mul_vec(&v);
            let norm = dot(&w, &w).sqrt();
            if norm == 0.0 {
                break;
            }
            lambda = norm;
            v = w.iter().map(|x| x / norm).collect();
        }
        lambda.max(1e-12) * 1.01
    }

    /// Accelerated projected gradient for `min ½wᵀΣw − t·μᵀw` (FISTA with restarts).
    fn fista(&self, t: f64, iterations: usize) -> Vec<f64> {
        let n = self.assets.len();
        let step = 1.0 / self.lipschitz();
        let mut w = self.project(&vec![1.0 / n as f64; n]);
        let mut y = w.clone();
        let mut momentum = 1.0_f64;
        for _ in 0..iterations {
            let grad = self.gradient(&y, t);
            let next =
                self.project(&y.iter().zip(&grad).map(|(yi, g)| yi - step * g).collect::<Vec<_>>());
            let change: f64 = next.iter().zip(&w).map(|(a, b)| (a - b).abs()).sum();
            let m_next = 0.5 * (1.0 + (1.0 + 4.0 * momentum * momentum).sqrt());
            let restart =
                dot(&grad, &next.iter().zip(&w).map(|(a, b)| a - b).collect::<Vec<_>>()) > 0.0;
            let beta = if restart { 0.0 } else { (momentum - 1.0) / m_next };
            y = next.iter().zip(&w).map(|(a, b)| a + beta * (a - b)).collect();
            momentum = if restart { 1.0 } else { m_next };
            w = next;
            if change < 1e-12 {
                break;
            }
        }
        w
    }

    fn gradient(&self, w: &[f64], t: f64) -> Vec<f64> {
        self.cov.mul_vec(w).iter().zip(&self.mu).map(|(s, m)| s - t * m).collect()
    }

    /// Solves the KKT system with the assets in `fixed` held at the given values; returns the
    /// weights and the budget multiplier.
    fn kkt(&self, fixed: &[Option<f64>], t: f64) -> Result<(Vec<f64>, f64)> {
        let free: Vec<usize> = (0..fixed.len()).filter(|&i| fixed[i].is_none()).collect();
        let mut w: Vec<f64> = fixed.iter().map(|x| x.unwrap_or(0.0)).collect();
        let fixed_sum: f64 = w.iter().sum();
        if free.is_empty() {
            return Err(FinanceError::NoSolution(format!(
                "all weights at bounds sum to {fixed_sum}, not 1"
            )));
        }
        let k = free.len();
        let mut a = Matrix::zeros(k + 1, k + 1);
        let mut rhs = vec![0.0; k + 1];
        for (r, &i) in free.iter().enumerate() {
            for (c, &j) in free.iter().enumerate() {
                a.set(r, c, self.cov.get(i, j));
            }
            a.set(r, k, -1.0);
            a.set(k, r, 1.0);
            let fixed_part: f64 = (0..w.len())
                .filter(|j| fixed[*j].is_some())
                .map(|j| self.cov.get(i, j) * w[j])
                .sum();
            rhs[r] = t * self.mu[i] - fixed_part;
        }
        rhs[k] = 1.0 - fixed_sum;
        let solution = a.solve(&rhs)?;
        for (r, &i) in free.iter().enumerate() {
            w[i] = solution[r];
        }
        Ok((w, solution[k]))
    }

    /// The active set (lower/upper/free) of an approximate solution.
    fn active_set(&self, w: &[f64]) -> Vec<Option<f64>> {
        w.iter()
            .enumerate()
            .map(|(i, &x)| {
                if x <= self.lower[i] + 1e-9 {
                    Some(self.lower[i])
                } else if x >= self.upper[i] - 1e-9 {
                    Some(self.upper[i])
                } else {
                    None
                }
            })
            .collect()
    }

    /// Exact solution of `min ½wᵀΣw − t·μᵀw` on the feasible set, and its active set: a short
    /// projected-gradient run guesses the active set and primal-dual active-set steps make it exact; a
    /// long run is the fallback when the guess was too rough.
    fn solve(&self, t: f64) -> (Vec<f64>, Vec<Option<f64>>) {
        let rough = self.fista(t, 300);
        if let Some(exact) = self.polish(&rough, t) {
            return exact;
        }
        let approx = self.fista(t, 20_000);
        self.polish(&approx, t).unwrap_or_else(|| {
            let fixed = self.active_set(&approx);
            (approx, fixed)
        })
    }

    /// Primal-dual active-set iterations from the active set of `approx`; `None` if they do not settle.
    fn polish(&self, approx: &[f64], t: f64) -> Option<(Vec<f64>, Vec<Option<f64>>)> {
        let mut fixed = self.active_set(approx);
        for _ in 0..50 {
            let (w, nu) = self.kkt(&fixed, t).ok()?;
            let grad = self.gradient(&w, t);
            let mut changed = false;
            for i in 0..w.len() {
                match fixed[i] {
                    None if w[i] < self.lower[i] - TOL => {
                        (fixed[i], changed) = (Some(self.lower[i]), true);
                    }
                    None if w[i] > self.upper[i] + TOL => {
                        (fixed[i], changed) = (Some(self.upper[i]), true);
                    }
                    Some(v)
                        if v == self.lower[i]
                            && grad[i] - nu < -1e-9
                            && self.lower[i] < self.upper[i] =>
                    {
                        (fixed[i], changed) = (None, true);
                    }
                    Some(v)
                        if v == self.upper[i]
                            && grad[i] - nu > 1e-9
                            && self.lower[i] < self.upper[i] =>
                    {
                        (fixed[i], changed) = (None, true);
                    }
                    _ => {}
                }
            }
            if !changed {
                return Some((w, fixed));
            }
        }
        None
    }

    /// On the segment with active set `fixed`, the solution is `a + b·t`; returns `(a, b)`.
    fn segment(&self, fixed: &[Option<f64>]) -> Option<(Vec<f64>, Vec<f64>)> {
        let (a, _) = self.kkt(fixed, 0.0).ok()?;
        let (one, _) = self.kkt(fixed, 1.0).ok()?;
        let b = one.iter().zip(&a).map(|(x, y)| x - y).collect();
        Some((a, b))
    }

    fn feasible(&self, w: &[f64]) -> bool {
        w.iter().enumerate().all(|(i, x)| *x >= self.lower[i] - 1e-9 && *x <= self.upper[i] + 1e-9)
            && (w.iter().sum::<f64>() - 1.0).abs() < 1e-9
    }

    fn clean(&self, w: Vec<f64>) -> Vec<f64> {
        w.into_iter().enumerate().map(|(i, x)| x.clamp(self.lower[i], self.upper[i])).collect()
    }

    /// The minimum-variance portfolio.
    pub fn min_volatility(&self) -> Vec<f64> {
        self.clean(self.solve(0.0).0)
    }

    /// The portfolio maximising `μᵀw − ½δ·wᵀΣw`.
    pub fn max_quadratic_utility(&self, risk_aversion: f64) -> Result<Vec<f64>> {
        if risk_aversion.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return Err(FinanceError::invalid("risk_aversion", "must be positive"));
        }
        Ok(self.clean(self.solve(1.0 / risk_aversion).0))
    }

    /// The largest `t` worth searching: beyond it the solution no longer changes (maximum return).
    fn t_max(&self) -> f64 {
        let mut t = 1.0;
        let mut previous = self.solve(t).0;
        for _ in 0..60 {
            let next = self.solve(2.0 * t).0;
            let change: f64 = next.iter().zip(&previous).map(|(a, b)| (a - b).abs()).sum();
            t *= 2.0;
            if change < 1e-12 {
                break;
            }
            previous = next;
        }
        t
    }

    /// Bisection on `t` for the first point where `f(w(t)) ≥ target` (f increasing along the frontier),
    /// then an exact root on that segment via `exact(a, b)`.
    fn frontier_root(
        &self,
        f: impl Fn(&[f64]) -> f64,
        target: f64,
        exact: impl Fn(&[f64], &[f64]) -> Option<f64>,
    ) -> Vec<f64> {
        let (mut lo, mut hi) = (0.0, self.t_max());
        for _ in 0..70 {
            let mid = 0.5 * (lo + hi);
            if f(&self.solve(mid).0) < target { lo = mid } else { hi = mid }
        }
        let (approx, fixed) = self.solve(hi);
        if let Some((a, b)) = self.segment(&fixed)
            && let Some(t) = exact(&a, &b)
        {
            let w: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + t * y).collect();
            if self.feasible(&w) {
                return self.clean(w);
            }
        }
        self.clean(approx)
    }

    /// The highest achievable expected return under the bounds (fill the best assets first).
    pub fn max_return(&self) -> f64 {
        let mut w = self.lower.clone();
        let mut left = 1.0 - w.iter().sum::<f64>();
        let mut order: Vec<usize> = (0..w.len()).collect();
        order.sort_by(|&a, &b| self.mu[b].total_cmp(&self.mu[a]));
        for i in order {
            let add = (self.upper[i] - self.lower[i]).min(left);
            w[i] += add;
            left -= add;
        }
        dot(&self.mu, &w)
    }

    /// Minimum variance subject to an expected return of at least `target`.
    pub fn efficient_return(&self, target: f64) -> Result<Vec<f64>> {
        let best = self.max_return();
        if target > best + 1e-12 {
            return Err(FinanceError::NoSolution(format!(
                "target_return {target} is above the highest achievable return {best:.6} under these bounds"
            )));
        }
        let min_vol = self.min_volatility();
        if dot(&self.mu, &min_vol) >= target {
            return Ok(min_vol);
        }
        let mu = &self.mu;
        Ok(self.frontier_root(
            |w| dot(mu, w),
            target,
            |a, b| {
                let slope = dot(mu, b);
                (slope.abs() > 1e-15).then(|| (target - dot(mu, a)) / slope)
            },
        ))
    }

    /// Maximum return subject to a volatility of at most `target`.
    pub fn efficient_risk(&self, target: f64) -> Result<Vec<f64>> {
        let min_vol = self.min_volatility();
        let floor = self.cov.quad(&min_vol).sqrt();
        if target < floor - 1e-12 {
            return Err(FinanceError::NoSolution(format!(
                "target_volatility {target} is below the minimum volatility {floor:.6} under these bounds"
            )));
        }
        let top = self.solve(self.t_max()).0;
        if self.cov.quad(&top).sqrt() <= target {
            return Ok(self.clean(top));
        }
        let cov = &self.cov;
        Ok(self.frontier_root(
            |w| cov.quad(w).sqrt(),
            target,
            |a, b| {
                let (qa, qb, qc) = (cov.quad(a), dot(a, &cov.mul_vec(b)), cov.quad(b));
                let disc = qb * qb - qc * (qa - target * target);
                (qc > 1e-18 && disc >= 0.0).then(|| (-qb + disc.sqrt()) / qc)
            },
        ))
    }

    /// The tangency portfolio: maximum `(μᵀw − r_f)/σ`.
    pub fn max_sharpe(&self, risk_free: f64) -> Result<Vec<f64>> {
        if self.mu.iter().all(|m| *m <= risk_free) {
            return Err(FinanceError::NoSolution(format!(
                "no asset has an expected return above the risk-free rate {risk_free}, so the Sharpe ratio cannot be maximised"
            )));
        }
        let sharpe = |t: f64| self.performance(&self.solve(t).0, risk_free).2;
        let (mut lo, mut hi) = (0.0, self.t_max());
        let golden = 0.5 * (5.0_f64.sqrt() - 1.0);
        let (mut x1, mut x2) = (hi - golden * (hi - lo), lo + golden * (hi - lo));
        let (mut f1, mut f2) = (sharpe(x1), sharpe(x2));
        for _ in 0..70 {
            if f1 < f2 {
                lo = x1;
                (x1, f1) = (x2, f2);
                x2 = lo + golden * (hi - lo);
                f2 = sharpe(x2);
            } else {
                hi = x2;
                (x2, f2) = (x1, f1);
                x1 = hi - golden * (hi - lo);
                f1 = sharpe(x1);
            }
        }
        let (approx, fixed) = self.solve(0.5 * (lo + hi));
        if let Some((a, b)) = self.segment(&fixed) {
            // Sharpe(t) = (p + q·t)/√(A + 2B·t + C·t²) is stationary at t = (pB − qA)/(qB − pC).
            let (p, q) = (dot(&self.mu, &a) - risk_free, dot(&self.mu, &b));
            let (qa, qb, qc) =
                (self.cov.quad(&a), dot(&a, &self.cov.mul_vec(&b)), self.cov.quad(&b));
            let denominator = q * qb - p * qc;
            if denominator.abs() > 1e-18 {
                let t = (p * qb - q * qa) / denominator;
                let w: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + t * y).collect();
                if t >= 0.0
                    && self.feasible(&w)
                    && self.performance(&w, risk_free).2
                        >= self.performance(&approx, risk_free).2 - 1e-12
                {
                    return Ok(self.clean(w));
                }
            }
        }
        Ok(self.clean(approx))
    }

    /// `points` portfolios from minimum variance to maximum return, equally spaced in return.
    pub fn frontier(&self, points: usize) -> Result<Vec<Vec<f64>>> {
        let points = points.clamp(2, 200);
        let low = dot(&self.mu, &self.min_volatility());
        let high = self.max_return();
        (0..points)
            .map(|k| {
                self.efficient_return(low + (high - low) * k as f64 / (points - 1) as f64 - 1e-12)
            })
            .collect()
    }

    /// Equal risk contribution (or the given risk budgets) by cyclical coordinate descent
    /// (Griveau-Billion, Richard and Roncalli, 2013); long-only by construction.
    pub fn risk_parity(&self, budgets: Option<&[f64]>) -> Result<Vec<f64>> {
        let n = self.assets.len();
        let budgets: Vec<f64> = match budgets {
            Some(b) => {
                if b.len() != n || b.iter().any(|x| !x.is_finite() || *x <= 0.0) {
                    return Err(FinanceError::invalid(
                        "risk_budgets",
                        format!("need {n} positive numbers"),
                    ));
                }
                let total: f64 = b.iter().sum();
                b.iter().map(|x| x / total).collect()
            }
            None => vec![1.0 / n as f64; n],
        };
        let mut y: Vec<f64> = (0..n).map(|i| 1.0 / self.cov.get(i, i).sqrt()).collect();
        for _ in 0..10_000 {
            let mut change = 0.0_f64;
            for i in 0..n {
                let s = self.cov.get(i, i);
                let c: f64 = (0..n).filter(|&j| j != i).map(|j| self.cov.get(i, j) * y[j]).sum();
                let next = (-c + (c * c + 4.0 * s * budgets[i]).sqrt()) / (2.0 * s);
                change = change.max((next - y[i]).abs() / next.max(1e-300));
                y[i] = next;
            }
            if change < 1e-14 {
                break;
            }
        }
        let total: f64 = y.iter().sum();
        Ok(y.iter().map(|x| x / total).collect())
    }

    /// Each asset's share of portfolio variance, `wᵢ(Σw)ᵢ / wᵀΣw`.
    pub fn risk_contributions(&self, w: &[f64]) -> Vec<f64> {
        let sw = self.cov.mul_vec(w);
        let total = dot(w, &sw);
        w.iter().zip(&sw).map(|(a, b)| if total > 0.0 { a * b / total } else { 0.0 }).collect()
    }
}

/// Hierarchical risk parity (López de Prado, 2016) as PyPortfolioOpt's `HRPOpt.optimize("single")`
/// computes it: correlation distance √((1−ρ)/2), single linkage (SciPy's minimum-spanning-tree
/// order and labels), leaves in pre-order, then recursive bisection with inverse-variance clusters.
pub fn hrp(returns: &[Vec<f64>], assets: &[String]) -> Result<Vec<f64>> {
    let n = returns.len();
    let cov = stats::covariance_matrix(returns);
    let corr = stats::correlation_matrix(&cov, assets)?;
    let dist = |i: usize, j: usize| ((1.0 - corr.get(i, j)) / 2.0).clamp(0.0, 1.0).sqrt();
    let order = single_linkage_order(n, dist);
    let mut w = vec![1.0; n];
    let mut clusters = vec![order];
    while !clusters.is_empty() {
        clusters = clusters
            .iter()
            .filter(|c| c.len() > 1)
            .flat_map(|c| {
                let half = c.len() / 2;
                [c[..half].to_vec(), c[half..].to_vec()]
            })
            .collect();
        for pair in clusters.chunks(2) {
            let [first, second] = pair else { continue };
            let (v1, v2) = (cluster_variance(&cov, first), cluster_variance(&cov, second));
            let alpha = 1.0 - v1 / (v1 + v2);
            first.iter().for_each(|&i| w[i] *= alpha);
            second.iter().for_each(|&i| w[i] *= 1.0 - alpha);
        }
    }
    Ok(w)
}

fn cluster_variance(cov: &Matrix, items: &[usize]) -> f64 {
    let sub = cov.select(items);
    let inv: Vec<f64> = (0..items.len()).map(|i| 1.0 / sub.get(i, i)).collect();
    let total: f64 = inv.iter().sum();
    let w: Vec<f64> = inv.iter().map(|x| x / total).collect();
    sub.quad(&w)
}

/// Leaf order of SciPy's single-linkage dendrogram (`to_tree(linkage(d, "single")).pre_order()`).
fn single_linkage_order(n: usize, dist: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    if n == 1 {
        return vec![0];
    }
    // Prim's algorithm exactly as scipy's mst_single_linkage walks it.
    let mut merged = vec![false; n];
    let mut best = vec![f64::INFINITY; n];
    let mut edges: Vec<(usize, usize, f64)> = Vec::with_capacity(n - 1);
    let mut x = 0;
    for _ in 0..n - 1 {
        merged[x] = true;
        let (mut y, mut current) = (0, f64::INFINITY);
        for i in 0..n {
            if merged[i] {
                continue;
            }
            best[i] = best[i].min(dist(x, i));
            if best[i] < current {
                (y, current) = (i, best[i]);
            }
        }
        edges.push((x, y, current));
        x = y;
    }
    // A stable sort by distance, as np.argsort(kind="mergesort").
    edges.sort_by(|a, b| a.2.total_cmp(&b.2));
    // Label clusters with a union-find: cluster n+k is made by row k, children ordered (smaller, larger).
    let mut parent: Vec<usize> = (0..2 * n - 1).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut children: Vec<(usize, usize)> = Vec::with_capacity(n - 1);
    for (k, (a, b, _)) in edges.iter().enumerate() {
        let (ra, rb) = (find(&mut parent, *a), find(&mut parent, *b));
        children.push((ra.min(rb), ra.max(rb)));
        parent[ra] = n + k;
        parent[rb] = n + k;
    }
    let mut order = Vec::with_capacity(n);
    let mut stack = vec![2 * n - 2];
    while let Some(node) = stack.pop() {
        if node < n {
            order.push(node);
        } else {
            let (left, right) = children[node - n];
            stack.push(right);
            stack.push(left);
        }
    }
    order
}

/// Black-Litterman posterior returns and covariance (He and Litterman's default Ω = τ·diag(PΣPᵀ)),
/// as PyPortfolioOpt's `BlackLittermanModel` computes them.
#[derive(Debug, Clone)]
pub struct BlackLitterman {
    /// The prior (market-implied) returns π.
    pub prior: Vec<f64>,
    /// The posterior returns.
    pub posterior: Vec<f64>,
    /// The posterior covariance Σ + M.
    pub posterior_cov: Matrix,
    /// The unconstrained weights `(δΣ)⁻¹·posterior`, normalised to sum to 1.
    pub weights: Vec<f64>,
}

/// Computes the Black-Litterman posterior for views `P·r = Q`.
pub fn black_litterman(
    cov: &Matrix,
    prior: &[f64],
    p: &Matrix,
    q: &[f64],
    tau: f64,
    risk_aversion: f64,
) -> Result<BlackLitterman> {
    let n = cov.rows();
    if p.cols() != n || p.rows() != q.len() || p.rows() == 0 {
        return Err(FinanceError::invalid(
            "views",
            format!(
                "P is {}x{} and Q has {} values; need k×{n} and k",
                p.rows(),
                p.cols(),
                q.len()
            ),
        ));
    }
    if !(tau > 0.0 && risk_aversion > 0.0) {
        return Err(FinanceError::invalid("tau", "tau and risk_aversion must be positive"));
    }
    let tau_sigma = cov.scale(tau);
    let tau_sigma_pt = tau_sigma.mul(&p.transpose());
    let p_sigma_pt = p.mul(&tau_sigma_pt);
    let mut a = p_sigma_pt.clone();
    for i in 0..a.rows() {
        a.set(i, i, 2.0 * p_sigma_pt.get(i, i));
    }
    let p_pi = p.mul_vec(prior);
    let b: Vec<f64> = q.iter().zip(&p_pi).map(|(x, y)| x - y).collect();
    let a_inv_b = a.solve(&b).map_err(|_| {
        FinanceError::NoSolution("the views are redundant: P·Σ·Pᵀ is singular".into())
    })?;
    let shift = tau_sigma_pt.mul_vec(&a_inv_b);
    let posterior: Vec<f64> = prior.iter().zip(&shift).map(|(x, y)| x + y).collect();
    let a_inv = a.inverse()?;
    let m = tau_sigma.add(&tau_sigma_pt.mul(&a_inv).mul(&tau_sigma_pt.transpose()).scale(-1.0));
    let posterior_cov = cov.add(&m);
    let raw = cov.scale(risk_aversion).solve(&posterior)?;
    let total: f64 = raw.iter().sum();
    if total.abs() < 1e-15 {
        return Err(FinanceError::NoSolution(
            "Black-Litterman weights sum to zero and cannot be normalised".into(),
        ));
    }
    let weights = raw.iter().map(|x| x / total).collect();
    Ok(BlackLitterman { prior: prior.to_vec(), posterior, posterior_cov, weights })
}

/// Parameters of the `allocate` tool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocateParams {
    method: String,
    #[serde(default)]
    prices: Option<Value>,
    #[serde(default)]
    prices_csv: Option<String>,
    #[serde(default)]
    expected_returns: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    covariance: Option<Vec<Vec<f64>>>,
    #[serde(default)]
    assets: Option<Vec<String>>,
    #[serde(default)]
    bounds: Option<Value>,
    #[serde(default)]
    risk_free_rate: Option<f64>,
    #[serde(default)]
    target_return: Option<f64>,
    #[serde(default)]
    target_volatility: Option<f64>,
    #[serde(default)]
    risk_aversion: Option<f64>,
    #[serde(default)]
    points: Option<usize>,
    #[serde(default)]
    risk_budgets: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    market_caps: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    views: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    view_matrix: Option<Vec<Vec<f64>>>,
    #[serde(default)]
    view_returns: Option<Vec<f64>>,
    #[serde(default)]
    tau: Option<f64>,
}

/// The JSON schema of the `allocate` tool's parameters.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["method"],
        "properties": {
            "method": {"type": "string", "enum": ["min_volatility", "max_sharpe", "efficient_return", "efficient_risk",
                "max_quadratic_utility", "frontier", "risk_parity", "hrp", "black_litterman"]},
            "prices": {"type": "object", "description": "price history: asset name → array of prices (oldest first)",
                "additionalProperties": {"type": "array", "items": {"type": "number"}}},
            "prices_csv": {"type": "string", "description": "wide CSV: a date column (date/日期) and one price column per asset"},
            "expected_returns": {"type": "object", "description": "annual expected returns per asset (instead of prices)",
                "additionalProperties": {"type": "number"}},
            "covariance": {"type": "array", "description": "annual covariance rows, in the order of `assets`",
                "items": {"type": "array", "items": {"type": "number"}}},
            "assets": {"type": "array", "items": {"type": "string"}, "description": "asset order for `covariance`"},
            "bounds": {"description": "[lower, upper] for every asset, or an object asset → [lower, upper]; default [0, 1]"},
            "risk_free_rate": {"type": "number", "description": "annual, default 0.02"},
            "target_return": {"type": "number"},
            "target_volatility": {"type": "number"},
            "risk_aversion": {"type": "number", "description": "δ for max_quadratic_utility and Black-Litterman, default 2.5"},
            "points": {"type": "integer", "description": "frontier points, default 20"},
            "risk_budgets": {"type": "object", "additionalProperties": {"type": "number"}},
            "market_caps": {"type": "object", "description": "Black-Litterman market capitalisations per asset",
                "additionalProperties": {"type": "number"}},
            "views": {"type": "object", "description": "absolute views: asset → expected annual return",
                "additionalProperties": {"type": "number"}},
            "view_matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}},
                "description": "Black-Litterman pick matrix P (rows are views, columns follow asset order)"},
            "view_returns": {"type": "array", "items": {"type": "number"}, "description": "Black-Litterman Q"},
            "tau": {"type": "number", "description": "Black-Litterman τ, default 0.05"}
        }
    })
}

/// Runs the `allocate` tool.
pub fn run(params: Value) -> Result<Value> {
    let p: AllocateParams = parse_params(params)?;
    let risk_free = p.risk_free_rate.unwrap_or(0.02);
    let history = if p.prices.is_some() || p.prices_csv.is_some() {
        let mut value = json!({});
        if let Some(prices) = &p.prices {
            value["prices"] = prices.clone();
        }
        if let Some(csv) = &p.prices_csv {
            value["prices_csv"] = Value::String(csv.clone());
        }
        let history = PriceHistory::from_params(&value)?;
        Some(match &p.assets {
            Some(order) => history.reordered(order)?,
            None => history,
        })
    } else {
        None
    };
    let returns = history.as_ref().map(PriceHistory::returns).transpose()?;
    let universe = match (&history, &returns) {
        (Some(history), Some(returns)) => {
            let mu = returns.iter().map(|r| stats::annualised_growth(r)).collect();
            let cov = stats::covariance_matrix(returns).scale(TRADING_DAYS);
            Universe::new(history.assets.clone(), mu, cov)?
        }
        _ => {
            let (Some(expected), Some(cov)) = (&p.expected_returns, &p.covariance) else {
                return Err(FinanceError::invalid(
                    "prices",
                    "give a price history (`prices` or `prices_csv`) or `expected_returns` with `covariance`",
                ));
            };
            let assets = p.assets.clone().unwrap_or_else(|| expected.keys().cloned().collect());
            let mu = assets
                .iter()
                .map(|a| {
                    expected.get(a).copied().ok_or_else(|| {
                        FinanceError::invalid(format!("expected_returns.{a}"), "missing")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Universe::new(assets, mu, Matrix::from_rows(cov, "covariance")?)?
        }
    };
    let universe = apply_bounds(universe, p.bounds.as_ref())?;
    let default_bounds =
        universe.lower.iter().all(|l| *l == 0.0) && universe.upper.iter().all(|u| *u == 1.0);
    let name_weights = |w: &[f64]| -> Value {
        Value::Object(universe.assets.iter().zip(w).map(|(a, x)| (a.clone(), json!(x))).collect())
    };
    let summary = |w: &[f64]| -> Value {
        let (ret, vol, sharpe) = universe.performance(w, risk_free);
        json!({"weights": name_weights(w), "expected_return": ret, "volatility": vol, "sharpe": sharpe,
               "risk_free_rate": risk_free})
    };
    let require_default_bounds = |method: &str| -> Result<()> {
        if default_bounds {
            Ok(())
        } else {
            Err(FinanceError::invalid(
                "bounds",
                format!("{method} is long-only by construction and takes no other bounds"),
            ))
        }
    };
    let mut out = match p.method.as_str() {
        "min_volatility" => summary(&universe.min_volatility()),
        "max_sharpe" => summary(&universe.max_sharpe(risk_free)?),
        "max_quadratic_utility" => {
            summary(&universe.max_quadratic_utility(p.risk_aversion.unwrap_or(2.5))?)
        }
        "efficient_return" => {
            let target = p.target_return.ok_or_else(|| {
                FinanceError::invalid("target_return", "required by efficient_return")
            })?;
            summary(&universe.efficient_return(target)?)
        }
        "efficient_risk" => {
            let target = p.target_volatility.ok_or_else(|| {
                FinanceError::invalid("target_volatility", "required by efficient_risk")
            })?;
            summary(&universe.efficient_risk(target)?)
        }
        "frontier" => {
            let points = universe.frontier(p.points.unwrap_or(20))?;
            json!({"frontier": points.iter().map(|w| summary(w)).collect::<Vec<_>>()})
        }
        "risk_parity" => {
            require_default_bounds("risk_parity")?;
            let budgets = p
                .risk_budgets
                .as_ref()
                .map(|b| {
                    universe
                        .assets
                        .iter()
                        .map(|a| {
                            b.get(a).copied().ok_or_else(|| {
                                FinanceError::invalid(format!("risk_budgets.{a}"), "missing")
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .transpose()?;
            let w = universe.risk_parity(budgets.as_deref())?;
            let mut out = summary(&w);
            out["risk_contributions"] = name_weights(&universe.risk_contributions(&w));
            out
        }
        "hrp" => {
            require_default_bounds("hrp")?;
            let returns = returns
                .as_ref()
                .ok_or_else(|| FinanceError::invalid("prices", "hrp needs a price history"))?;
            summary(&hrp(returns, &universe.assets)?)
        }
        "black_litterman" => run_black_litterman(&p, &universe, risk_free)?,
        other => return Err(FinanceError::invalid("method", format!("unknown method {other:?}"))),
    };
    out["method"] = json!(p.method);
    out["expected_returns"] = name_weights(&universe.mu);
    Ok(out)
}

fn apply_bounds(mut universe: Universe, bounds: Option<&Value>) -> Result<Universe> {
    let pair = |v: &Value, field: &str| -> Result<(f64, f64)> {
        match v.as_array().map(Vec::as_slice) {
            Some([l, u]) => match (l.as_f64(), u.as_f64()) {
                (Some(l), Some(u)) => Ok((l, u)),
                _ => Err(FinanceError::invalid(field, "bounds must be two numbers")),
            },
            _ => Err(FinanceError::invalid(field, "expected [lower, upper]")),
        }
    };
    match bounds {
        None => {}
        Some(Value::Array(_)) => {
            let (l, u) = pair(bounds.unwrap_or(&Value::Null), "bounds")?;
            universe = universe.with_bounds(l, u)?;
        }
        Some(Value::Object(map)) => {
            for (asset, value) in map {
                let field = format!("bounds.{asset}");
                let i = universe
                    .assets
                    .iter()
                    .position(|a| a == asset)
                    .ok_or_else(|| FinanceError::invalid(&field, "no such asset"))?;
                (universe.lower[i], universe.upper[i]) = pair(value, &field)?;
            }
            universe.check_bounds()?;
        }
        Some(_) => {
            return Err(FinanceError::invalid(
                "bounds",
                "expected [lower, upper] or an object of them",
            ));
        }
    }
    Ok(universe)
}

fn run_black_litterman(p: &AllocateParams, universe: &Universe, risk_free: f64) -> Result<Value> {
    let n = universe.assets.len();
    let delta = p.risk_aversion.unwrap_or(2.5);
    let caps = p
        .market_caps
        .as_ref()
        .ok_or_else(|| FinanceError::invalid("market_caps", "required by black_litterman"))?;
    let caps: Vec<f64> = universe
        .assets
        .iter()
        .map(|a| {
            caps.get(a)
                .copied()
                .ok_or_else(|| FinanceError::invalid(format!("market_caps.{a}"), "missing"))
        })
        .collect::<Result<_>>()?;
    let total: f64 = caps.iter().sum();
    if caps.iter().any(|c| *c < 0.0) || total <= 0.0 {
        return Err(FinanceError::invalid(
            "market_caps",
            "must be non-negative with a positive total",
        ));
    }
    let market: Vec<f64> = caps.iter().map(|c| c / total).collect();
    // π = δ·Σ·w_mkt (PyPortfolioOpt's market_implied_prior_returns with risk_free_rate 0).
    let prior: Vec<f64> = universe.cov.mul_vec(&market).iter().map(|x| delta * x).collect();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut q: Vec<f64> = Vec::new();
    if let Some(views) = &p.views {
        for (asset, value) in views {
            let i =
                universe.assets.iter().position(|a| a == asset).ok_or_else(|| {
                    FinanceError::invalid(format!("views.{asset}"), "no such asset")
                })?;
            let mut row = vec![0.0; n];
            row[i] = 1.0;
            rows.push(row);
            q.push(*value);
        }
    }
    if let Some(matrix) = &p.view_matrix {
        let returns = p
            .view_returns
            .as_ref()
            .ok_or_else(|| FinanceError::invalid("view_returns", "required with view_matrix"))?;
        if returns.len() != matrix.len() {
            return Err(FinanceError::invalid(
                "view_returns",
                format!("{} values for {} views", returns.len(), matrix.len()),
            ));
        }
        rows.extend(matrix.iter().cloned());
        q.extend(returns);
    }
    if rows.is_empty() {
        return Err(FinanceError::invalid("views", "black_litterman needs at least one view"));
    }
    let pick = Matrix::from_rows(&rows, "view_matrix")?;
    let bl = black_litterman(&universe.cov, &prior, &pick, &q, p.tau.unwrap_or(0.05), delta)?;
    let mut posterior =
        Universe::new(universe.assets.clone(), bl.posterior.clone(), bl.posterior_cov.clone())?;
    posterior.lower.clone_from(&universe.lower);
    posterior.upper.clone_from(&universe.upper);
    let optimised = posterior.max_sharpe(risk_free)?;
    let named = |w: &[f64]| -> Value {
        Value::Object(universe.assets.iter().zip(w).map(|(a, x)| (a.clone(), json!(x))).collect())
    };
    let (ret, vol, sharpe) = posterior.performance(&optimised, risk_free);
    Ok(json!({
        "prior_returns": named(&bl.prior),
        "posterior_returns": named(&bl.posterior),
        "weights": named(&bl.weights),
        "max_sharpe_weights": named(&optimised),
        "expected_return": ret, "volatility": vol, "sharpe": sharpe, "risk_free_rate": risk_free,
        "posterior_covariance": bl.posterior_cov.to_rows(),
    }))
}
