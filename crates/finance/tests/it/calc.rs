//! The decimal calculator and financial ratios.

use finance::calc;
use serde_json::{Value, json};

fn check(expression: &str, expect: &str) {
    let got = calc::evaluate(expression).unwrap_or_else(|err| panic!("{expression}: {err}"));
    assert_eq!(got.to_string(), expect, "{expression}");
}

#[test]
fn golden_expressions() {
    check("10000*(1+3.5%)^3", "11087.17875");
    check("0.1+0.2", "0.3");
    check("-2^2", "-4");
    check("2^-2", "0.25");
    check("2^3^2", "512");
    check("(1+2)*3 - 4/8", "8.5");
    check("round(1.2亿/365, 2)", "328767.12");
    check("round(2.5) + round(-2.5)", "0");
    check("3万 × 12 ÷ 4", "90000");
    check("max(1, 7, 3) - min(4, 2)", "5");
    check("floor(2.7) + ceil(2.1) + abs(-1)", "6");
    check("round(sqrt(2), 10)", "1.4142135624");
    check("round(100*(1.05)^(1/12), 6)", "100.407412");
    check("round(ln(exp(1)), 12)", "1");
    check("18980 - 180 - 6580", "12220");
}

#[test]
fn calc_tool_rounds_on_request() {
    let out = calc::run(json!({"expression": "10/3", "decimals": 2})).unwrap();
    assert_eq!(out["result"], "3.33");
}

#[test]
fn bad_expressions_say_where() {
    let check_err = |expression: &str, needle: &str| {
        let err = calc::evaluate(expression).unwrap_err().to_string();
        assert!(err.contains(needle), "{expression}: {err:?} lacks {needle:?}");
    };
    check_err("1/0", "division by zero");
    check_err("1 + (2", "expected ')'");
    check_err("2 $ 3", "column 3");
    check_err("foo(1)", "unknown function");
    check_err("x + 1", "unknown name");
    check_err("", "unexpected end");
    check_err("1 2", "unexpected input");
    check_err("(-8)^(1/3)", "undefined");
    check_err("10^100", "overflows");
    check_err(&"(".repeat(500), "nested too deeply");
    check_err(&format!("{}1", "-".repeat(1500)), "nested too deeply");
    check_err("sqrt(-1)", "negative");
    check_err("round(1, 2, 3)", "round takes");
}

#[test]
fn ratios_from_statement_items() {
    let out = calc::run_ratios(json!({"revenue": "1000", "cost_of_revenue": "600", "net_income": "120",
        "total_equity": "800", "total_assets": "2000", "total_liabilities": "1200", "current_assets": "500",
        "current_liabilities": "250", "inventory": "100", "non_performing_loans": "0"}))
    .unwrap();
    let value = |name: &str| out["ratios"][name]["value"].clone();
    assert_eq!(value("gross_margin"), json!("0.4"));
    assert_eq!(value("net_margin"), json!("0.12"));
    assert_eq!(value("roe"), json!("0.15"));
    assert_eq!(value("roa"), json!("0.06"));
    assert_eq!(value("current_ratio"), json!("2"));
    assert_eq!(value("quick_ratio"), json!("1.6"));
    assert_eq!(value("debt_to_assets"), json!("0.6"));
    assert_eq!(value("debt_to_equity"), json!("1.5"));
    assert_eq!(out["unavailable"]["npl_ratio"], json!("missing total_loans"));
    assert_eq!(out["unavailable"]["provision_coverage"], json!("missing loan_loss_provisions"));
    let err = calc::run_ratios(json!({"revenu": "1"})).unwrap_err().to_string();
    assert!(err.contains("revenu: unknown item"), "{err}");
    let out = calc::run_ratios(json!({"revenue": "0", "net_income": "5"})).unwrap();
    assert_eq!(out["unavailable"]["net_margin"], Value::from("revenue is zero"));
}
