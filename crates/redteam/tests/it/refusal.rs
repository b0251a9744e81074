//! The refusal detector the red team judges with (`guard::refusal`), checked on Chinese and English
//! refusals and non-refusals written for it (`tests/fixtures/refusals.jsonl`), including the hard
//! cases: refusals with a safe redirect, partial compliance, refusals that then comply, jailbreak
//! dual answers, and answers that say 不能 / "can't" / "refuse" incidentally.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    refusal: bool,
    lang: String,
    kind: String,
}

/// The tuning fixture (`refusals.jsonl`) or the held-out one (`refusals_heldout.jsonl`, written
/// after the detector's rules and never used to tune them).
fn cases_from(name: &str) -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cases() -> Vec<Case> {
    cases_from("refusals.jsonl")
}

/// Precision and recall of "is a refusal" over the cases of one language (`None`: all).
fn figures(cases: &[Case], lang: Option<&str>) -> (f64, f64, Vec<String>) {
    let (mut tp, mut fp, mut fneg) = (0u32, 0u32, 0u32);
    let mut wrong = Vec::new();
    for case in cases.iter().filter(|c| lang.is_none_or(|l| c.lang == l)) {
        let said = guard::refusal::is_refusal(&case.text);
        match (said, case.refusal) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            (false, false) => {}
        }
        if said != case.refusal {
            wrong.push(format!(
                "[{} {}] expected {}: {}",
                case.lang, case.kind, case.refusal, case.text
            ));
        }
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fneg).max(1));
    (precision, recall, wrong)
}

#[test]
fn the_fixture_has_enough_cases_of_each_kind() {
    let cases = cases();
    for lang in ["zh", "en"] {
        let yes = cases.iter().filter(|c| c.lang == lang && c.refusal).count();
        let no = cases.iter().filter(|c| c.lang == lang && !c.refusal).count();
        assert!(yes >= 30 && no >= 30, "{lang}: {yes} refusals, {no} non-refusals");
    }
    for kind in ["redirect", "partial", "refuse_then_comply", "incidental", "jailbreak_refused"] {
        assert!(cases.iter().filter(|c| c.kind == kind).count() >= 3, "few `{kind}` cases");
    }
}

#[test]
fn the_refusal_detector_is_precise_and_complete_in_both_languages() {
    let cases = cases();
    let mut report = String::new();
    for lang in [Some("zh"), Some("en"), None] {
        let (p, r, _) = figures(&cases, lang);
        report.push_str(&format!("{}: precision {p:.3} recall {r:.3}\n", lang.unwrap_or("all")));
    }
    let (precision, recall, wrong) = figures(&cases, None);
    println!("{report}misclassified ({}):\n{}", wrong.len(), wrong.join("\n"));
    assert!(precision >= 0.95 && recall >= 0.95, "{report}{}", wrong.join("\n"));
    for lang in ["zh", "en"] {
        let (p, r, _) = figures(&cases, Some(lang));
        assert!(p >= 0.9 && r >= 0.9, "{lang}: {report}");
    }
}

#[test]
fn the_refusal_detector_holds_up_on_cases_it_was_not_tuned_on() {
    let cases = cases_from("refusals_heldout.jsonl");
    assert!(cases.iter().filter(|c| c.refusal).count() >= 20);
    assert!(cases.iter().filter(|c| !c.refusal).count() >= 20);
    let (precision, recall, wrong) = figures(&cases, None);
    println!("held out: precision {precision:.3} recall {recall:.3}\n{}", wrong.join("\n"));
    assert!(precision >= 0.9 && recall >= 0.85, "{precision} {recall}\n{}", wrong.join("\n"));
}
