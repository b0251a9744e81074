//! Open-market operations: the seed's figures (article 2) reproduced from operations, not typed in.
//!
//! `omo_2023-11.csv` holds the 7-day reverse repos of Oct 30 – Nov 6, 2023 in AKShare's headers. The
//! amounts of Oct 30 – Nov 3 are the article's maturities of Nov 6 – 10 moved back by the 7-day tenor
//! (the article also states Oct 30 and 31 directly: 6580亿 and 6120亿); Nov 6 is the article's 180亿 at
//! 1.8%. Every total below is derived by the tool from dates and tenors.

use finance::liquidity;
use serde_json::{Value, json};

use crate::support::fixture;

fn run(from: &str, to: &str) -> Value {
    liquidity::run(json!({"csv": fixture("omo_2023-11.csv"), "from": from, "to": to})).unwrap()
}

#[test]
fn seed_nov_6_net_withdrawal() {
    let out = run("2023-11-06", "2023-11-06");
    let day = &out["daily"][0];
    assert_eq!(day["date"], "2023-11-06");
    assert_eq!(day["injection"], "180");
    assert_eq!(day["maturing"], "6580");
    assert_eq!(day["net"], "-6400");
    assert_eq!(day["operations"][0]["rate"], "1.8");
    let summary = out["summary"].as_str().unwrap();
    assert!(summary.contains("11月6日：开展180亿元7天期逆回购操作，中标利率1.8%；当日有6580亿元到期，公开市场净回笼6400亿元。"), "{summary}");
}

#[test]
fn seed_week_of_nov_6_maturities() {
    let out = run("2023-11-06", "2023-11-10");
    assert_eq!(out["total"]["maturing"], "18980");
    let maturing: Vec<&str> =
        out["daily"].as_array().unwrap().iter().map(|d| d["maturing"].as_str().unwrap()).collect();
    assert_eq!(maturing, ["6580", "6120", "3910", "1940", "430"]);
    let dates: Vec<&str> =
        out["daily"].as_array().unwrap().iter().map(|d| d["date"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2023-11-06", "2023-11-07", "2023-11-08", "2023-11-09", "2023-11-10"]);
    assert_eq!(out["weekly"].as_array().unwrap().len(), 1);
    assert_eq!(out["weekly"][0]["week_start"], "2023-11-06");
    assert_eq!(out["weekly"][0]["maturing"], "18980");
    let summary = out["summary"].as_str().unwrap();
    assert!(summary.contains("到期分布：11月6日6580亿元、11月7日6120亿元、11月8日3910亿元、11月9日1940亿元、11月10日430亿元。"), "{summary}");
}

#[test]
fn outstanding_stock_and_monthly_totals() {
    let out = run("2023-10-30", "2023-11-13");
    // End of Oct 31: only the Oct 30 and 31 operations of this file are outstanding.
    let oct31 =
        out["daily"].as_array().unwrap().iter().find(|d| d["date"] == "2023-10-31").unwrap();
    assert_eq!(oct31["outstanding"]["逆回购"], "12700");
    let months: Vec<(&str, &str)> = out["monthly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["month"].as_str().unwrap(), m["net"].as_str().unwrap()))
        .collect();
    assert_eq!(months, [("2023-10", "12700"), ("2023-11", "-12700")]);
    assert_eq!(out["outstanding_at_end"], json!({}));
}

#[test]
fn json_rows_with_english_headers_and_other_instruments() {
    let out = liquidity::run(json!({"operations": [
        {"date": "2023-11-15", "instrument": "MLF", "tenor": "1Y", "amount": "14500", "rate": "2.5"},
        {"date": "20231115", "instrument": "正回购", "tenor": "14D", "amount": 100},
        {"date": "2023-11-20", "instrument": "special facility", "tenor": "3M", "amount": 50, "direction": "投放"}
    ], "to": "2024-11-15"}))
    .unwrap();
    let days: Vec<&str> =
        out["daily"].as_array().unwrap().iter().map(|d| d["date"].as_str().unwrap()).collect();
    assert_eq!(days, ["2023-11-15", "2023-11-20", "2023-11-29", "2024-02-20", "2024-11-15"]);
    let first = &out["daily"][0];
    assert_eq!(first["injection"], "14500");
    assert_eq!(first["withdrawal"], "100");
    assert_eq!(first["net"], "14400");
    assert_eq!(out["total"]["net"], "0");
}

#[test]
fn bad_input_names_what_and_where() {
    let check = |csv: &str, needle: &[&str]| {
        let err = liquidity::run(json!({"csv": csv})).unwrap_err().to_string();
        for n in needle {
            assert!(err.contains(n), "{err:?} lacks {n:?}");
        }
    };
    check(
        "日期,期限,交易量\n2023-11-06,7天,180\n",
        &["missing column `instrument`", "正/逆回购", "found headers: 日期, 期限, 交易量"],
    );
    check(
        "date,instrument,tenor,amount\n2023-11-06,逆回购,7天,180\n2023-11-07,逆回购,-7天,10\n",
        &["row 2", "`tenor`", "must be positive"],
    );
    check(
        "date,instrument,tenor,amount\n2023-13-06,逆回购,7天,180\n",
        &["row 1", "`date`", "not a date"],
    );
    check(
        "date,instrument,tenor,amount\n2023-11-06,逆回购,7天,abc\n",
        &["row 1", "`amount`", "not a number"],
    );
    check(
        "date,instrument,tenor,amount\n2023-11-06,magic,7天,1\n",
        &["row 1", "give a direction column"],
    );
    check(
        "date,instrument,tenor,amount\n2023-11-06,逆回购,7天,1e25\n",
        &["row 1", "`amount`", "too large"],
    );
    let err = liquidity::run(json!({})).unwrap_err().to_string();
    assert!(err.contains("operations"), "{err}");
}
