//! Metric values on small hand-checked cases.

use eval::metrics::{bleu, f1, numeric_match, rouge_l, set_partial, tokens};

fn check(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}

#[test]
fn set_partial_credit() {
    check(set_partial("ABD", "ABD"), 1.0);
    check(set_partial("DBA", "ABD"), 1.0);
    check(set_partial("AB", "ABD"), 2.0 / 3.0);
    check(set_partial("ABC", "ABD"), 0.0);
    check(set_partial("", "ABD"), 0.0);
}

#[test]
fn text_overlap() {
    let t = |s: &str| tokens(s);
    assert_eq!(t("央行 降准0.5%"), vec!["央", "行", "降", "准", "0.5"]);
    check(f1(&t("央行降准"), &t("央行降准")), 1.0);
    check(f1(&t("央行降息"), &t("央行降准")), 0.75);
    // LCS of 央行宣布降准 / 央行降准 is 4: P = 4/6, R = 1, F = 0.8.
    check(rouge_l(&t("央行宣布降准"), &t("央行降准")), 0.8);
    check(bleu(&t("央行宣布降准"), &t("央行宣布降准")), 1.0);
    assert!(bleu(&t("央行宣布降准"), &t("央行宣布降息")) < 1.0);
    check(bleu(&t("甲乙"), &t("丙丁")), 0.0);
}

#[test]
fn numeric_tolerance() {
    assert!(numeric_match(160.1, 160.0));
    assert!(!numeric_match(170.0, 160.0));
    assert!(numeric_match(0.0, 0.0));
}
