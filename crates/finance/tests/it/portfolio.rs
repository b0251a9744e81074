//! Portfolio diagnosis: a small portfolio whose statistics were computed independently with numpy
//! (sample std with ddof=1, empirical tail, `statistics.NormalDist` for the normal quantile).

use finance::portfolio;
use serde_json::{Value, json};

fn params() -> Value {
    json!({
        "holdings": [
            {"symbol": "A", "quantity": "1000", "asset_class": "股票", "sector": "银行"},
            {"symbol": "B", "quantity": "500", "asset_class": "债券", "sector": "利率债"},
            {"symbol": "现金", "value": "10000", "asset_class": "现金"}
        ],
        "prices_csv": "日期,A,B\n2023-11-01,10,20\n2023-11-02,11,20.4\n2023-11-03,10.5,20.2\n2023-11-06,12,20.8\n2023-11-07,11.4,21\n2023-11-08,12.5,21.2\n",
        "confidence": 0.8,
        "correlation_threshold": 0.8
    })
}

fn close(value: &Value, expect: f64) {
    let got = value.as_f64().unwrap_or_else(|| panic!("{value} is not a number"));
    assert!((got - expect).abs() < 1e-9 * expect.abs().max(1.0), "{got} vs {expect}");
}

#[test]
fn golden_small_portfolio() {
    let out = portfolio::run(params()).unwrap();
    assert_eq!(out["total_value"], "33100.00");
    assert_eq!(out["holdings"][0]["value"], "12500.00");
    close(&out["holdings"][0]["weight"], 0.377_643_504_531_722);
    close(&out["concentration"]["hhi"], 0.336_442_712_279_004_4);
    let risk = &out["risk"];
    assert_eq!(risk["valuation"], "buy_and_hold");
    close(&risk["annual_volatility"], 0.561_893_625_112_139_9);
    close(&risk["max_drawdown"], 0.019_230_769_230_769_273);
    assert_eq!(risk["max_drawdown_peak"], "2023-11-02");
    assert_eq!(risk["max_drawdown_trough"], "2023-11-03");
    close(&risk["historical_var"], 0.019_230_769_230_769_273);
    close(&risk["historical_cvar"], 0.019_230_769_230_769_273);
    close(&risk["parametric_var"], 0.009_434_357_788_531_317);
    close(&risk["parametric_cvar"], 0.029_191_977_268_311_55);
    close(&risk["sharpe"], 9.093_575_495_210_37);
    close(&risk["sortino"], 29.058_346_814_009_234);
    assert_eq!(risk["historical_var_amount"], "636.54");
    assert_eq!(out["exposure"]["asset_class"]["现金"]["value"], "10000.00");
    // corr(A, B) = 0.8027 ≥ 0.8: one cluster.
    assert_eq!(out["correlation_clusters"][0]["symbols"], json!(["A", "B"]));
    let findings = out["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(findings.contains("单一持仓A占比37.76%，超过30%，集中度过高。"), "{findings}");
    assert!(findings.contains("A与B的日收益相关系数为0.80"), "{findings}");
    assert!(findings.contains("单日损失预计不超过636.54元"), "{findings}");
}

#[test]
fn value_only_holdings_use_constant_weights() {
    let out = portfolio::run(json!({
        "holdings": [{"symbol": "A", "value": 50}, {"symbol": "B", "value": 50}],
        "prices": {"A": [1, 1.1, 1.21], "B": [1, 0.9, 0.99]}
    }))
    .unwrap();
    assert_eq!(out["risk"]["valuation"], "constant_weights");
    // Daily returns: (0.1 − 0.1)/2 = 0 then (0.1 + 0.1)/2 = 0.1: no drawdown.
    close(&out["risk"]["max_drawdown"], 0.0);
    assert!(out["risk"]["sharpe"].is_number());
}

#[test]
fn bad_input() {
    let check = |params: Value, needle: &str| {
        let err = portfolio::run(params).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    check(json!({"holdings": [], "prices": {"A": [1, 2, 3]}}), "the portfolio is empty");
    check(
        json!({"holdings": [{"symbol": "Z", "quantity": 1}], "prices": {"A": [1, 2, 3]}}),
        "holdings[0].symbol: no prices for \"Z\"",
    );
    check(
        json!({"holdings": [{"symbol": "A"}], "prices": {"A": [1, 2, 3]}}),
        "give a quantity or a value",
    );
    check(
        json!({"holdings": [{"symbol": "A", "quantity": 1}], "prices": {"A": [1, 0, 3]}}),
        "prices.A[1]",
    );
    check(
        json!({"holdings": [{"symbol": "A", "quantity": 1}], "prices_csv": "date,A\n2023-11-01,1\n2023-11-02,x\n2023-11-03,2\n"}),
        "row 2, column `A`",
    );
    check(
        json!({"holdings": [{"symbol": "A", "quantity": 1}], "prices": {"A": [1, 2, 3]}, "confidence": 1.5}),
        "confidence",
    );
    check(
        json!({"holdings": [{"symbol": "A", "quantity": 1, "weight": 1}], "prices": {"A": [1, 2, 3]}}),
        "unknown field `weight`",
    );
}
