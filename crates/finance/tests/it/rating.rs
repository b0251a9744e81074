//! Small-loan company ratings and the seed's industry statistics (article 3).
//!
//! `lenders_2023q3.csv` is the PBOC figure the article quotes for end-September 2023 (5604 companies,
//! 50624 staff, 7856.4亿元). `lenders_2023_start.csv` is the year-start row implied by the article's
//! stated declines (354 companies, 6438 staff, 1251亿元); the tool must recover those declines and the
//! 785.64 billion conversion.

use finance::rating;
use serde_json::{Value, json};

use crate::support::fixture;

#[test]
fn seed_industry_statistics() {
    let out = rating::run_stats(json!({"csv": fixture("lenders_2023q3.csv"), "previous_csv": fixture("lenders_2023_start.csv"),
        "as_of": "2023年9月末", "previous_label": "年初"}))
    .unwrap();
    assert_eq!(out["companies"], "5604");
    assert_eq!(out["staff"], "50624");
    assert_eq!(out["loan_balance_yi"], "7856.4");
    assert_eq!(out["loan_balance_billion"], "785.64");
    assert_eq!(
        out["change"],
        json!({"companies": "-354", "staff": "-6438", "loan_balance_yi": "-1251", "loan_balance_billion": "-125.1"})
    );
    assert_eq!(
        out["summary"],
        "截至2023年9月末，共有小额贷款公司5604家，从业人员50624人，贷款余额7856.4亿元（785.64 billion yuan）；较年初机构减少354家，从业人员减少6438人，贷款余额减少1251亿元。"
    );
}

#[test]
fn stats_sum_rows_and_count_companies() {
    let out = rating::run_stats(json!({"rows": [
        {"name": "甲", "staff": 10, "loan_balance": "1.25"},
        {"name": "乙", "staff": 7, "loan_balance": "0.75"}
    ]}))
    .unwrap();
    assert_eq!(
        (out["companies"].as_str(), out["staff"].as_str(), out["loan_balance_yi"].as_str()),
        (Some("2"), Some("17"), Some("2"))
    );
}

fn companies() -> Value {
    json!([
        {"name": "优质小贷", "npl_ratio": "0.01", "leverage": "0.8", "single_borrower_ratio": "0.04", "provision_coverage": "2",
         "reporting_timeliness": "1", "violations": "0", "registered_capital": "500000000"},
        {"name": "小资本优质", "npl_ratio": "0.01", "leverage": "0.8", "single_borrower_ratio": "0.04", "provision_coverage": "2",
         "reporting_timeliness": "1", "violations": "0", "registered_capital": "100000000"},
        {"name": "一般小贷", "npl_ratio": "0.055", "leverage": "2.5", "single_borrower_ratio": "0.08", "provision_coverage": "1.2",
         "reporting_timeliness": "0.9", "violations": "1", "registered_capital": "100000000"},
        {"name": "拒绝监管", "npl_ratio": "0.01", "leverage": "0.8", "single_borrower_ratio": "0.04", "provision_coverage": "2",
         "reporting_timeliness": "1", "violations": "0", "refuses_supervision": "是", "registered_capital": "100000000"},
        {"name": "连续D级", "npl_ratio": "0.2", "leverage": "6", "single_borrower_ratio": "0.3", "provision_coverage": "0.2",
         "reporting_timeliness": "0.5", "violations": "5", "previous_grade": "D", "registered_capital": "100000000"},
        {"name": "歇业小贷", "status": "已登记歇业"}
    ])
}

#[test]
fn default_scorecard_grades_and_notes() {
    let out = rating::run(json!({"companies": companies()})).unwrap();
    let grade = |i: usize| out["companies"][i]["grade"].clone();
    assert_eq!(out["companies"][0]["score"], "100");
    assert_eq!(grade(0), "A");
    assert_eq!(
        out["companies"][0]["notes"],
        json!(["经省地方金融监管局同意，可申请在全省范围内开展业务"])
    );
    assert_eq!(out["companies"][1]["notes"], json!([]));
    // npl 0.055 → 25·(0.10−0.055)/0.09 = 12.5; leverage 2.5 → 15; single 0.08 → 9; provision 1.2 → 9;
    // reporting 0.9 → 5; one violation → 7.5: 58 points.
    assert_eq!(out["companies"][2]["score"], "58");
    assert_eq!(grade(2), "D");
    assert_eq!(grade(3), "D");
    assert_eq!(grade(4), "D");
    assert_eq!(out["companies"][4]["notes"], json!(["按问题企业监管"]));
    assert_eq!(out["companies"][5]["notes"], json!(["已登记歇业"]));
    assert_eq!(out["distribution"], json!({"A": 2, "B": 0, "C": 0, "D": 3}));
    assert_eq!(
        out["summary"],
        "共6家小额贷款公司，参评5家：A级2家、B级0家、C级0家、D级3家；已登记歇业1家；按问题企业监管1家。"
    );
}

#[test]
fn toml_scorecard_with_renewal_and_csv_input() {
    let csv = "公司名称,不良贷款率,融资杠杆,上年评级,refuses_supervision\n\
               甲,0.02,1,AAA,\n乙,0.02,1,AA,\n丙,0.07,3,A,\n丁,0.12,9,C,\n戊,0.02,1,,1\n";
    let out = rating::run(json!({"csv": csv, "scorecard": fixture("jiangxi_style.toml")})).unwrap();
    let grades: Vec<&str> =
        out["companies"].as_array().unwrap().iter().map(|c| c["grade"].as_str().unwrap()).collect();
    assert_eq!(grades, ["AAA", "AAA", "B", "C", "C"]);
    assert_eq!(out["companies"][0]["notes"], json!(["续评AAA"]));
    assert_eq!(out["companies"][2]["score"], "55");
    assert_eq!(out["companies"][3]["notes"], json!(["按问题企业监管"]));
    assert_eq!(out["notes"], json!({"按问题企业监管": 1, "续评AAA": 1}));
}

#[test]
fn bad_input() {
    let check = |params: Value, needle: &str| {
        let err = rating::run(params).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    check(json!({"companies": [{"name": "甲", "npl_ratio": "0.01"}]}), "missing column `leverage`");
    check(
        json!({"companies": [{"name": "甲", "npl_ratio": "x", "leverage": 1, "single_borrower_ratio": 0, "provision_coverage": 1,
        "reporting_timeliness": 1, "violations": 0}]}),
        "row 1, column `npl_ratio`",
    );
    check(json!({"companies": [{"npl_ratio": 0.01}]}), "missing column `name`");
    check(json!({"companies": [{"name": "甲"}], "scorecard": "name = 1"}), "scorecard");
    check(
        json!({"companies": [{"name": "甲"}], "scorecard": "[[indicator]]\nname='x'\nweight=1\n[[grade]]\nname='A'\nmin_score=0\n"}),
        "needs best and worst",
    );
    let err =
        rating::run_stats(json!({"rows": [{"companies": 1, "staff": 2}]})).unwrap_err().to_string();
    assert!(err.contains("missing column `loan_balance`"), "{err}");
}
