//! Allocation against PyPortfolioOpt golden results, plus seeded property tests and bad input.

use finance::allocation;
use serde_json::{Value, json};

use crate::support::{Rng, fixture};

fn golden() -> Value {
    serde_json::from_str(&fixture("allocation_golden.json")).unwrap()
}

/// The fixture's prices as the tool's `prices` object.
fn prices(g: &Value) -> Value {
    let tickers: Vec<&str> =
        g["tickers"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let rows = g["prices"].as_array().unwrap();
    let mut object = serde_json::Map::new();
    for (i, ticker) in tickers.iter().enumerate() {
        object.insert((*ticker).to_owned(), rows.iter().map(|r| r[i].clone()).collect());
    }
    Value::Object(object)
}

/// Max absolute weight difference between the tool output and the golden weights.
fn max_diff(g: &Value, out: &Value, key: &str, expected: &Value) -> f64 {
    g["tickers"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (out[key][t.as_str().unwrap()].as_f64().unwrap() - expected[i].as_f64().unwrap()).abs()
        })
        .fold(0.0, f64::max)
}

fn check(case: &str, params: Value, key: &str, tolerance: f64) {
    let g = golden();
    let mut params = params;
    params["prices"] = prices(&g);
    params["assets"] = g["tickers"].clone();
    let out = allocation::run(params).unwrap_or_else(|err| panic!("{case}: {err}"));
    let expected = &g["cases"][case]
        [if key == "max_sharpe_weights" { "max_sharpe_weights" } else { "weights" }];
    let diff = max_diff(&g, &out, key, expected);
    println!("{case}: max |Δw| vs PyPortfolioOpt = {diff:.2e}");
    assert!(diff < tolerance, "{case}: max weight difference {diff} ≥ {tolerance}\n{out:#}");
}

#[test]
fn expected_returns_and_covariance_match_pyportfolioopt() {
    let g = golden();
    let out = allocation::run(json!({"method": "min_volatility", "prices": prices(&g)})).unwrap();
    for (i, t) in g["tickers"].as_array().unwrap().iter().enumerate() {
        let ours = out["expected_returns"][t.as_str().unwrap()].as_f64().unwrap();
        let theirs = g["mu"][i].as_f64().unwrap();
        assert!((ours - theirs).abs() < 1e-12, "{t}: {ours} vs {theirs}");
    }
}

#[test]
fn golden_min_volatility() {
    check("min_volatility_long_only", json!({"method": "min_volatility"}), "weights", 1e-5);
    check(
        "min_volatility_bounded",
        json!({"method": "min_volatility", "bounds": [0.05, 0.35]}),
        "weights",
        1e-5,
    );
}

#[test]
fn golden_max_sharpe() {
    check(
        "max_sharpe_long_only",
        json!({"method": "max_sharpe", "risk_free_rate": 0.02}),
        "weights",
        1e-4,
    );
    check(
        "max_sharpe_bounded",
        json!({"method": "max_sharpe", "risk_free_rate": 0.02, "bounds": [0.05, 0.35]}),
        "weights",
        1e-4,
    );
}

#[test]
fn golden_efficient_return_and_risk() {
    check(
        "efficient_return_long_only",
        json!({"method": "efficient_return", "target_return": 0.3}),
        "weights",
        1e-4,
    );
    check(
        "efficient_return_bounded",
        json!({"method": "efficient_return", "target_return": 0.3, "bounds": [0.05, 0.35]}),
        "weights",
        1e-4,
    );
    check(
        "efficient_risk_long_only",
        json!({"method": "efficient_risk", "target_volatility": 0.12}),
        "weights",
        1e-4,
    );
    check(
        "efficient_risk_bounded",
        json!({"method": "efficient_risk", "target_volatility": 0.12, "bounds": [0.05, 0.35]}),
        "weights",
        1e-4,
    );
}

#[test]
fn golden_hrp() {
    check("hrp", json!({"method": "hrp"}), "weights", 1e-9);
}

#[test]
fn golden_black_litterman() {
    let g = golden();
    let case = &g["cases"]["black_litterman"];
    let tickers: Vec<String> =
        g["tickers"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect();
    let caps: serde_json::Map<String, Value> = tickers
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), case["market_caps"][i].clone()))
        .collect();
    let p = &case["P"];
    let params = json!({"method": "black_litterman", "market_caps": caps, "view_matrix": p, "view_returns": case["Q"],
        "tau": 0.05, "risk_aversion": 2.5, "risk_free_rate": 0.02});
    check("black_litterman", params.clone(), "weights", 1e-9);
    check("black_litterman", params.clone(), "max_sharpe_weights", 1e-4);
    let mut full = params;
    full["prices"] = prices(&g);
    full["assets"] = g["tickers"].clone();
    let out = allocation::run(full).unwrap();
    for (i, t) in tickers.iter().enumerate() {
        let ours = out["posterior_returns"][t].as_f64().unwrap();
        let theirs = case["posterior"][i].as_f64().unwrap();
        assert!((ours - theirs).abs() < 1e-12, "posterior {t}: {ours} vs {theirs}");
    }
}

fn random_universe(rng: &mut Rng, n: usize) -> Value {
    let days = 120;
    let mut object = serde_json::Map::new();
    let common: Vec<f64> = (0..days).map(|_| rng.normal() * 0.01).collect();
    for a in 0..n {
        let beta = rng.uniform() * 1.5;
        let vol = 0.005 + rng.uniform() * 0.02;
        let drift = (rng.uniform() - 0.3) * 0.002;
        let mut p = 100.0;
        let mut series = vec![p];
        for c in &common {
            p *= 1.0 + drift + beta * c + vol * rng.normal();
            series.push(p);
        }
        object.insert(format!("A{a}"), json!(series));
    }
    Value::Object(object)
}

#[test]
fn property_weights_sum_to_one_and_respect_bounds() {
    let mut rng = Rng::new(7);
    for case in 0..30 {
        let n = rng.range(2, 8) as usize;
        let prices = random_universe(&mut rng, n);
        let upper = (1.0 / n as f64 + rng.uniform() * 0.5).min(1.0);
        let lower = rng.uniform() * (1.0 / n as f64) * 0.5;
        for method in
            ["min_volatility", "max_sharpe", "max_quadratic_utility", "risk_parity", "hrp"]
        {
            let bounded = !matches!(method, "risk_parity" | "hrp");
            let mut params = json!({"method": method, "prices": prices, "risk_free_rate": -1.0});
            if bounded {
                params["bounds"] = json!([lower, upper]);
            }
            let out =
                allocation::run(params).unwrap_or_else(|err| panic!("case {case} {method}: {err}"));
            let weights: Vec<f64> =
                out["weights"].as_object().unwrap().values().map(|w| w.as_f64().unwrap()).collect();
            let sum: f64 = weights.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "case {case} {method}: sum {sum}");
            let (lo, hi) = if bounded { (lower, upper) } else { (0.0, 1.0) };
            for w in &weights {
                assert!(
                    *w >= lo - 1e-9 && *w <= hi + 1e-9,
                    "case {case} {method}: {w} outside [{lo}, {hi}]"
                );
            }
        }
    }
}

#[test]
fn property_risk_parity_equalises_contributions() {
    let mut rng = Rng::new(11);
    for _ in 0..20 {
        let n = rng.range(2, 7) as usize;
        let out = allocation::run(
            json!({"method": "risk_parity", "prices": random_universe(&mut rng, n)}),
        )
        .unwrap();
        for rc in out["risk_contributions"].as_object().unwrap().values() {
            assert!((rc.as_f64().unwrap() - 1.0 / n as f64).abs() < 1e-8, "{out:#}");
        }
    }
}

#[test]
fn property_min_volatility_is_not_beaten_by_random_feasible_portfolios() {
    let mut rng = Rng::new(3);
    let prices = random_universe(&mut rng, 5);
    let out = allocation::run(json!({"method": "min_volatility", "prices": prices})).unwrap();
    let best = out["volatility"].as_f64().unwrap();
    let cov_out =
        allocation::run(json!({"method": "frontier", "prices": prices, "points": 5})).unwrap();
    for point in cov_out["frontier"].as_array().unwrap() {
        assert!(point["volatility"].as_f64().unwrap() >= best - 1e-12);
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let check_err = |params: Value, needle: &str| {
        let err = match allocation::run(params.clone()) {
            Ok(out) => panic!("{params} was accepted: {out}"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    check_err(json!({"method": "min_volatility", "prices": {}}), "portfolio is empty");
    check_err(
        json!({"method": "min_volatility", "expected_returns": {"A": 0.1, "B": 0.1},
        "covariance": [[0.04, 0.04], [0.04, 0.04]], "assets": ["A", "B"]}),
        "singular",
    );
    check_err(
        json!({"method": "min_volatility", "prices": {"A": [1, 2, 3], "B": [1, 2]}}),
        "aligned",
    );
    check_err(
        json!({"method": "min_volatility", "prices": {"A": [1, -2, 3], "B": [1, 2, 2]}}),
        "prices.A[1]",
    );
    check_err(
        json!({"method": "max_sharpe", "prices": {"A": [1, 1.1, 1.2, 1.1], "B": [1, 0.9, 1.0, 1.05]},
        "bounds": [0.6, 1.0]}),
        "infeasible",
    );
    check_err(
        json!({"method": "magic", "prices": {"A": [1, 1.1, 1.2, 1.1], "B": [1, 0.9, 1.0, 1.05]}}),
        "unknown method",
    );
    check_err(
        json!({"method": "efficient_return", "target_return": 5000.0,
        "prices": {"A": [1, 1.1, 1.2, 1.1], "B": [1, 0.9, 1.0, 1.05]}}),
        "highest achievable",
    );
    check_err(
        json!({"method": "min_volatility", "risk_free_rate": "x", "prices": {"A": [1, 1.1, 1.2]}}),
        "risk_free_rate",
    );
}
