//! Golden cases for every extractor (tests/data/extract.tsv): one wrong rule skews a whole benchmark.

use eval::extract::{Extractor, NAMES};

fn choices(extractor: Extractor) -> Vec<(String, String)> {
    let texts: &[&str] = match extractor {
        Extractor::TrueFalse => &["对", "错"],
        _ => &["甲", "乙", "丙", "丁"],
    };
    texts.iter().zip(["A", "B", "C", "D"]).map(|(t, l)| (l.to_string(), t.to_string())).collect()
}

#[test]
fn golden_cases() {
    let table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/extract.tsv"))
            .unwrap();
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for line in table.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "bad golden line {line:?}");
        let extractor = Extractor::from_name(cols[0]).unwrap();
        seen.insert(cols[0]);
        let input = cols[1].replace("\\n", "\n");
        let got = extractor.extract(&input, &choices(extractor)).unwrap_or_else(|| "-".into());
        if got != cols[2] {
            failures.push(format!("{} {:?}: got {got:?}, want {:?}", cols[0], cols[1], cols[2]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(seen.len(), NAMES.len(), "every extractor needs golden cases");
}

#[test]
fn names_round_trip() {
    for name in NAMES {
        assert_eq!(Extractor::from_name(name).unwrap().name(), *name);
    }
    assert!(Extractor::from_name("nope").is_none());
}
