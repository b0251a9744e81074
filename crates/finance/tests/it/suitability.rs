//! Investor suitability: questionnaire scoring, C/R matching and the disclosure rules.

use finance::suitability;
use serde_json::{Value, json};

fn run(params: Value) -> Value {
    suitability::run(params).unwrap_or_else(|err| panic!("{err}"))
}

#[test]
fn questionnaire_is_returned_without_answers() {
    let out = run(json!({}));
    assert_eq!(out["questionnaire"].as_array().unwrap().len(), 10);
}

#[test]
fn scores_map_to_levels() {
    // Highest option everywhere except age: 8+10+10+10+10+10+10+10+10+10 = 98 → C5.
    let out = run(json!({"answers": ["A", "E", "E", "E", "D", "D", "D", "E", "C", "D"]}));
    assert_eq!(out["score"], 98);
    assert_eq!(out["investor_level"], "C5");
    // 10+4+4+3+3+5+4+3+5+4 = 45 → C3.
    let out = run(
        json!({"answers": {"q1": "B", "q2": "B", "q3": "B", "q4": "B", "q5": "B", "q6": "B", "q7": "B", "q8": "B", "q9": "B", "q10": "B"},
        "product_risk": "R3"}),
    );
    assert_eq!(out["score"], 45);
    assert_eq!(out["investor_level"], "C3");
    assert_eq!(out["allowed_products"], json!(["R1", "R2", "R3"]));
    assert_eq!(out["suitable"], true);
    assert!(out["disclosure"].as_str().unwrap().contains("不保本"));
}

#[test]
fn mismatch_needs_a_special_warning_and_the_lowest_category_is_never_sold_up() {
    let out = run(json!({"investor_level": "C2", "product_risk": "R4"}));
    assert_eq!((out["suitable"].as_bool(), out["may_sell"].as_bool()), (Some(false), Some(false)));
    assert!(out["disclosure"].as_str().unwrap().contains("特别书面风险警示"));
    let out = run(json!({"investor_level": "C2", "product_risk": "R4", "insists": true}));
    assert_eq!(
        (out["may_sell"].as_bool(), out["requires_special_warning"].as_bool()),
        (Some(true), Some(true))
    );
    // "Cannot bear any loss" puts a high scorer in the lowest category.
    let out = run(
        json!({"answers": ["B", "E", "E", "E", "D", "D", "D", "A", "C", "D"], "product_risk": "PR2", "insists": true}),
    );
    assert_eq!(out["investor_level"], "C1");
    assert_eq!(out["lowest_category"], true);
    assert_eq!(out["may_sell"], false);
    assert!(out["disclosure"].as_str().unwrap().contains("最低类别"));
    let out = run(json!({"investor_level": "C1", "product_risk": "R5", "professional": true}));
    assert_eq!(out["suitable"], true);
}

#[test]
fn bad_input() {
    let check = |params: Value, needle: &str| {
        let err = suitability::run(params).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    check(json!({"answers": {"q1": "B"}}), "answers.q2: unanswered");
    check(json!({"answers": ["Z"]}), "answers.q1: \"Z\" is not one of A, B, C, D, E");
    check(json!({"answers": {"q99": "A"}}), "answers.q99: no such question");
    check(json!({"investor_level": "C9"}), "investor_level");
    check(json!({"investor_level": "C3", "product_risk": "high"}), "product_risk");
    check(json!({"answers": vec!["A"; 11]}), "only 10 questions");
}
