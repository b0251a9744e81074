//! Loan schedules: golden figures (checked against an independent Python `decimal` computation with
//! the same fen rounding), amortisation and IRR properties over seeded random loans, flags, bad input.

use finance::credit;
use serde_json::{Value, json};

use crate::support::Rng;

fn loan(params: Value) -> Value {
    credit::run(params).unwrap_or_else(|err| panic!("{err}"))
}

fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn golden_equal_installment() {
    let out = loan(
        json!({"principal": "100000", "rate": "0.12", "months": 12, "method": "equal-installment"}),
    );
    assert_eq!(out["first_payment"], "8884.88");
    assert_eq!(out["total_interest"], "6618.53");
    let last = &out["schedule"][11];
    assert_eq!(
        (last["payment"].as_str(), last["principal"].as_str(), last["interest"].as_str()),
        (Some("8884.85"), Some("8796.88"), Some("87.97"))
    );
    assert_eq!(last["balance"], "0.00");
    assert_eq!(out["apr"].as_str().unwrap()[..6], *"0.1199");
    assert!(out["flags"].as_array().unwrap().is_empty(), "{}", out["flags"]);
}

#[test]
fn golden_equal_principal_and_interest_first() {
    let out = loan(json!({"principal": 100000, "rate": 0.12, "months": 12, "method": "等额本金"}));
    assert_eq!(out["first_payment"], "9333.33");
    assert_eq!(out["schedule"][11]["payment"], "8416.70");
    assert_eq!(out["total_interest"], "6500.00");
    let out =
        loan(json!({"principal": 100000, "rate": 0.12, "months": 12, "method": "interest-first"}));
    assert_eq!(out["first_payment"], "1000.00");
    assert_eq!(out["schedule"][11]["payment"], "101000.00");
    assert_eq!(out["total_interest"], "12000.00");
}

#[test]
fn flat_rate_is_flagged_as_understating_cost() {
    // 等本等息 at a "12%" monthly-flat rate costs about 21.46% a year (Python bisection: 0.2145718).
    let out = loan(json!({"principal": 100000, "rate": 0.12, "months": 12, "method": "flat"}));
    let apr: f64 = out["apr"].as_str().unwrap().parse().unwrap();
    assert!((apr - 0.214_571_8).abs() < 1e-6, "{apr}");
    let codes: Vec<&str> =
        out["flags"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["above_4x_lpr", "nominal_understates_cost"]);
}

#[test]
fn fees_push_the_apr_over_the_legal_lines() {
    let out = loan(
        json!({"principal": 10000, "rate": 0.18, "months": 12, "upfront_fee": 800, "monthly_fee": 60}),
    );
    let codes: Vec<&str> =
        out["flags"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["above_36", "above_24", "above_4x_lpr", "nominal_understates_cost"],
        "{}",
        out["apr"]
    );
    assert!(out["summary"].as_str().unwrap().contains("整治办函〔2017〕141号"));
    // A custom LPR moves only the 4×LPR line: 4 × 10% = 40% is above this loan's cost.
    let out = loan(json!({"principal": 10000, "rate": 0.2, "months": 12, "lpr": "0.10"}));
    let codes: Vec<&str> =
        out["flags"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(codes.is_empty(), "{codes:?}");
}

#[test]
fn early_repayment_full_and_partial() {
    let full = loan(
        json!({"principal": 100000, "rate": 0.12, "months": 12, "prepay_after": 6, "prepay_penalty_rate": "0.01"}),
    );
    assert_eq!(full["schedule"].as_array().unwrap().len(), 6);
    let row = &full["schedule"][5];
    assert_eq!(row["balance"], "0.00");
    let prepaid = dec(&row["prepaid"]);
    assert_eq!(
        full["prepayment"]["penalty"],
        json!((prepaid / rust_decimal::Decimal::from(100)).round_dp(2).to_string())
    );
    assert!(dec(&full["prepayment"]["interest_saved"]) > rust_decimal::Decimal::ZERO);
    let partial = loan(
        json!({"principal": 100000, "rate": 0.12, "months": 12, "prepay_after": 6, "prepay_amount": 20000}),
    );
    let rows = partial["schedule"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[11]["balance"], "0.00");
    assert!(
        dec(&rows[6]["payment"]) < dec(&rows[4]["payment"]),
        "the instalment falls after a partial prepayment"
    );
    // No penalty and no fees: the IRR of the prepaid schedule is still the nominal rate.
    let apr: f64 = partial["apr"].as_str().unwrap().parse().unwrap();
    assert!((apr - 0.12).abs() < 2e-4, "{apr}");
}

#[test]
fn property_schedules_amortise_to_zero_and_irr_reproduces_the_rate() {
    let mut rng = Rng::new(42);
    for case in 0..200 {
        let principal = rng.range(1_000, 2_000_000);
        let cents = rng.range(0, 99);
        let rate_bp = rng.range(0, 3600);
        let months = rng.range(1, 360);
        let method = ["equal-installment", "equal-principal", "interest-first", "flat"]
            [rng.range(0, 3) as usize];
        let params = json!({"principal": format!("{principal}.{cents:02}"), "rate": format!("{}", rate_bp as f64 / 10000.0),
            "months": months, "method": method});
        let out = loan(params.clone());
        let rows = out["schedule"].as_array().unwrap();
        assert_eq!(rows.len() as u64, months, "{params}");
        let repaid: rust_decimal::Decimal = rows.iter().map(|r| dec(&r["principal"])).sum();
        assert_eq!(repaid, dec(&json!(format!("{principal}.{cents:02}"))), "case {case} {params}");
        assert!(dec(&rows[rows.len() - 1]["balance"]).is_zero(), "case {case} {params}");
        assert!(
            rows.iter().all(|r| !dec(&r["balance"]).is_sign_negative()),
            "case {case} {params}"
        );
        if method != "flat" {
            let apr: f64 = out["apr"].as_str().unwrap().parse().unwrap();
            let nominal = rate_bp as f64 / 10000.0;
            // Rounding to the fen moves the IRR by at most a few cents over the principal.
            let tolerance = 1e-6 + 12.0 * 0.01 * months as f64 / principal as f64;
            assert!(
                (apr - nominal).abs() < tolerance,
                "case {case} {params}: apr {apr} vs {nominal}"
            );
        }
    }
}

#[test]
fn bad_input() {
    let check = |params: Value, needle: &str| {
        let err = credit::run(params).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    check(json!({"rate": 0.1, "months": 12}), "principal");
    check(json!({"principal": -5, "rate": 0.1, "months": 12}), "principal: must be positive");
    check(json!({"principal": "1e20", "rate": 0.1, "months": 12}), "at most 1e15");
    check(json!({"principal": 100, "rate": 0.1, "months": 0}), "months");
    check(json!({"principal": 100, "rate": -0.1, "months": 12}), "rate");
    check(json!({"principal": 100, "rate": 0.1, "months": 12, "method": "balloon"}), "method");
    check(json!({"principal": 100, "rate": 0.1, "months": 12, "prepay_after": 12}), "prepay_after");
    check(
        json!({"principal": 100, "rate": 0.1, "months": 12, "prepay_after": 2, "prepay_amount": 1000}),
        "prepay_amount",
    );
    check(json!({"principal": 100, "rate": 0.1, "months": 12, "upfront_fee": 100}), "upfront_fee");
}
