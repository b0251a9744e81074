//! Money-market rates: the seed's DR007 and Shibor figures (article 2) as series around the 1.8%
//! policy rate. `rates_2023-11.csv` has the article's DR007 fixings of Nov 1, 2, 3 and 6 and its
//! Shibor fixings of Nov 6; the Nov 3 Shibor values are the article's Nov 6 values minus its stated
//! changes (−4.4 bp overnight, +1 bp 7-day), so the tool must recover those changes exactly.

use finance::rates;
use serde_json::{Value, json};

use crate::support::fixture;

fn run() -> Value {
    rates::run(
        json!({"csv": fixture("rates_2023-11.csv"), "policy_rate": 1.8, "moving_average": 3}),
    )
    .unwrap()
}

#[test]
fn seed_dr007_around_policy_rate() {
    let out = run();
    let dr = &out["series"]["DR007"];
    assert_eq!(dr["first"]["value"], "1.9361");
    assert_eq!(dr["last"]["value"], "1.7691");
    assert_eq!(dr["change_bp"], "-16.7");
    let spreads: Vec<&str> = dr["observations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["spread_bp"].as_str().unwrap())
        .collect();
    assert_eq!(spreads, ["13.61", "2.83", "-4.36", "-3.09"]);
    let changes: Vec<Value> =
        dr["observations"].as_array().unwrap().iter().map(|o| o["change_bp"].clone()).collect();
    assert_eq!(changes, [Value::Null, json!("-10.78"), json!("-7.19"), json!("1.27")]);
    // (1.8283 + 1.7564 + 1.7691) / 3
    assert_eq!(dr["observations"][3]["moving_average"], "1.7846");
    let summary = out["summary"].as_str().unwrap();
    assert!(summary.contains("DR007：11月6日报1.7691%，较前值上行1.27个基点；较11月1日的1.9361%下行16.7个基点；相对1.8%的政策利率偏离-4.36至+13.61个基点，围绕政策利率波动。"), "{summary}");
}

#[test]
fn seed_shibor_changes() {
    let out = run();
    assert_eq!(out["series"]["Shibor O/N"]["last"]["value"], "1.579");
    assert_eq!(out["series"]["Shibor O/N"]["change_bp"], "-4.4");
    assert_eq!(out["series"]["Shibor 1W"]["last"]["value"], "1.752");
    assert_eq!(out["series"]["Shibor 1W"]["change_bp"], "1");
    let summary = out["summary"].as_str().unwrap();
    assert!(
        summary.contains("Shibor O/N：11月6日报1.579%，较前值下行4.4个基点；相对1.8%"),
        "{summary}"
    );
    // Only DR007 is a 7-day repo rate: compare just it with the 7-day policy rate.
    let out = rates::run(
        json!({"csv": fixture("rates_2023-11.csv"), "policy_rate": "1.8", "compare": ["DR007"]}),
    )
    .unwrap();
    let summary = out["summary"].as_str().unwrap();
    assert!(summary.contains("Shibor O/N：11月6日报1.579%，较前值下行4.4个基点。"), "{summary}");
    assert_eq!(out["series"]["DR007"]["spread_bp_min"], "-4.36");
    assert!(out["series"]["Shibor O/N"]["spread_bp_min"].is_null());
    let err =
        rates::run(json!({"csv": fixture("rates_2023-11.csv"), "compare": ["DR001"]})).unwrap_err();
    assert!(err.to_string().contains("compare: no series named \"DR001\""), "{err}");
}

#[test]
fn policy_rate_as_a_series_and_json_input() {
    let out = rates::run(json!({
        "series": {
            "DR007": [{"date": "2023-11-01", "value": 1.9361}, {"date": "2023-11-06", "value": "1.7691"}],
            "OMO7D": [{"date": "2023-10-01", "value": 1.8}]
        },
        "policy_rate": "OMO7D", "band_bp": 10
    }))
    .unwrap();
    assert_eq!(out["series"]["DR007"]["spread_bp_max"], "13.61");
    assert!(out["series"].get("OMO7D").is_none());
    assert!(out["summary"].as_str().unwrap().contains("明显偏离政策利率"));
}

#[test]
fn bad_input() {
    let err = rates::run(json!({"csv": "DR007\n1.9\n"})).unwrap_err().to_string();
    assert!(err.contains("missing column `date`"), "{err}");
    let err = rates::run(json!({"csv": "date,DR007\n2023-11-01,x\n"})).unwrap_err().to_string();
    assert!(err.contains("row 1, column `DR007`"), "{err}");
    let err = rates::run(json!({"series": {"DR007": [{"date": "nope", "value": 1}]}}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("series.DR007[0].date"), "{err}");
    let err = rates::run(
        json!({"series": {"DR007": [{"date": "2023-11-01", "value": 1}]}, "policy_rate": "X"}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("policy_rate"), "{err}");
}
