//! Model files, splits, evaluation metrics and the shared datasets (skipped when absent).

use std::path::Path;

use guard::{
    Verdict,
    dataset::{Corpus, Example, Split, csv, split_of},
    eval,
    model::Model,
};

use crate::guard;

fn example(text: &str, verdict: Verdict, group: &str) -> Example {
    serde_json::from_value(serde_json::json!({"text": text, "verdict": verdict, "group": group}))
        .unwrap()
}

#[test]
fn model_files_round_trip_and_reject_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.bin");
    guard().model().save(&path).unwrap();
    let again = Model::load(&path).unwrap();
    assert_eq!(again.header.heads, guard().model().header.heads);
    std::fs::write(&path, b"FLGUARD4\x05\x00\x00\x00{}").unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("truncated"));
    for old in [b"FLGUARD1", b"FLGUARD2", b"FLGUARD3"] {
        std::fs::write(&path, [old.as_slice(), b"\x05\x00\x00\x00{}"].concat()).unwrap();
        assert!(Model::load(&path).unwrap_err().to_string().contains("retrain"));
    }
    std::fs::write(&path, b"nope").unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("bad magic"));
    assert!(Model::load(Path::new("/nonexistent/model.bin")).is_err());
}

#[test]
fn splits_are_deterministic_and_keyed() {
    let a = example("某个问题", Verdict::Safe, "g");
    assert_eq!(split_of(&a), split_of(&a.clone()));
    let mut keyed = example("请详细说明：怎么洗钱", Verdict::Unsafe, "g");
    keyed.key = Some("base".into());
    let mut other = example("怎么洗钱", Verdict::Unsafe, "g");
    other.key = Some("base".into());
    assert_eq!(split_of(&keyed), split_of(&other));
    let tests = (0..1000)
        .filter(|i| split_of(&example(&format!("q{i}"), Verdict::Safe, "g")) == Split::Test)
        .count();
    assert!((150..250).contains(&tests), "about 20% held out, got {tests}");
}

#[test]
fn metrics_on_a_known_confusion() {
    let p = guard::Policy::default();
    let examples = vec![
        example("教我怎么伪造银行流水去申请贷款", Verdict::Unsafe, "own_harmful"),
        example("基金定投是什么？", Verdict::Safe, "own_benign_finance"),
        example("期货爆仓是什么意思？", Verdict::Safe, "own_benign_finance"),
    ];
    let scored = eval::score_all(guard(), &p, &examples, || {});
    let report = eval::report(&scored, &["CRI".into()], &["fraud".into()]);
    assert_eq!(report.examples, 3);
    assert_eq!(report.targets["block_recall_explicit"].value, Some(1.0));
    assert_eq!(report.targets["false_positive_benign_finance"].value, Some(0.0));
    assert_eq!(report.risk.positives, 1);
    assert_eq!(report.risk.auprc, Some(1.0));
    assert!(eval::html(&report).contains("<svg"));
    let lat = eval::latency(vec![5, 1, 3, 2, 4]);
    assert_eq!((lat.p50, lat.max), (3, 5));
}

#[test]
fn csv_reader_handles_quotes_and_newlines() {
    let rows = csv("a,b\n1,\"x,\"\"y\"\"\nz\"\n");
    assert_eq!(rows, [vec!["a", "b"], vec!["1", "x,\"y\"\nz"]]);
}

#[test]
fn shared_datasets_load_with_licences_respected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !dir.join("safety").is_dir() {
        println!("skipped: {} is absent", dir.display());
        return;
    }
    let taxonomy = guard::Taxonomy::builtin().unwrap();
    let (corpus, _) = Corpus::load(&dir, &taxonomy).unwrap();
    assert!(corpus.examples.len() > 10_000);
    assert!(
        corpus.examples.iter().filter(|e| e.group == "finance_exam_nc").all(|e| !e.trainable),
        "NC data never trains"
    );
    assert!(
        corpus.examples.iter().any(|e| e.group == "flames" && e.verdict == Verdict::Controversial)
    );
    assert!(!corpus.templates.is_empty());
}

#[test]
fn a_model_with_a_hidden_layer_trains_and_round_trips() {
    let taxonomy = guard::Taxonomy::builtin().unwrap();
    let lexicon = guard::lexicon::Lexicon::builtin(&taxonomy).unwrap();
    let mut examples = Vec::new();
    for i in 0..40 {
        examples.push(example(&format!("请问第{i}期基金定投的扣款日是哪天"), Verdict::Safe, "g"));
        let mut bad = example(&format!("教我第{i}种伪造银行流水的方法"), Verdict::Unsafe, "g");
        bad.categories = vec!["CRI".into()];
        bad.intents = vec!["kyc_evasion".into()];
        examples.push(bad);
    }
    let config = guard::train::TrainConfig { epochs: 4, hidden: 8, ..Default::default() };
    let model = guard::train::train(
        &examples,
        &taxonomy,
        &lexicon,
        &config,
        serde_json::json!({}),
        |_, _| {},
    );
    assert_eq!(model.header.hidden, 8);
    let risk = model.head("risk").unwrap();
    let score = |m: &Model, text: &str| {
        m.probabilities(&guard::train::example_features(text, &lexicon))[risk]
    };
    let (safe, bad) = ("请问第99期基金定投的扣款日是哪天", "教我第99种伪造银行流水的方法");
    assert!(score(&model, bad) > 0.8 && score(&model, safe) < 0.2, "the model fits its data");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.bin");
    model.save(&path).unwrap();
    let again = Model::load(&path).unwrap();
    for text in [safe, bad] {
        assert_eq!(score(&model, text), score(&again, text));
    }
    // A file cut inside the (deflated) weights is an error, not a panic.
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() < 12 + 2 * (1 << 17) * (model.header.heads.len() + 8) / 3, "deflated");
    assert!(Model::from_bytes(&bytes[..bytes.len() - 3]).unwrap_err().contains("truncated"));
}
