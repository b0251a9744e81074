//! The risk library: size and shape of the built-in tree, validation errors that name the file and
//! leaf, and selection patterns as campaign files use them.

use guard::taxonomy::Taxonomy;
use redteam::attack::Lang;
use redteam::risks::{MIN_GOALS, RiskLibrary};

fn library() -> RiskLibrary {
    RiskLibrary::builtin().unwrap()
}

#[test]
fn the_builtin_library_has_300_leaves_with_goals_in_both_languages() {
    let lib = library();
    assert!(lib.leaves().len() >= 300, "only {} leaves", lib.leaves().len());
    let taxonomy = Taxonomy::builtin().unwrap();
    for leaf in lib.leaves() {
        assert!(leaf.goals_zh.len() >= MIN_GOALS, "{}", leaf.id);
        assert!(leaf.goals_en.len() >= MIN_GOALS, "{}", leaf.id);
        let parent = taxonomy.risks.iter().find(|r| r.id == leaf.risk).unwrap();
        assert!(parent.category == leaf.category || parent.also.contains(&leaf.category));
        assert_eq!(leaf.seeds().len(), leaf.goals_zh.len() + leaf.goals_en.len());
        assert!(leaf.seeds().iter().all(|a| a.risk == leaf.id && a.turns.len() == 1));
    }
    // Every category and every one of the 31 TC260 risks has leaves.
    for category in &taxonomy.categories {
        assert!(lib.in_category(&category.id).count() >= 5, "category {}", category.id);
    }
    for risk in &taxonomy.risks {
        assert!(lib.under_risk(&risk.id).count() >= 1, "TC260 risk {} has no leaf", risk.id);
    }
    for leaf in lib.leaves() {
        assert!(taxonomy.intents.iter().any(|i| i.id == leaf.intent), "{}", leaf.id);
    }
    // Every intent of the guard is reached by some leaf, so exported findings teach all its heads.
    for intent in &taxonomy.intents {
        assert!(
            lib.leaves().iter().any(|l| l.intent == intent.id),
            "no leaf for intent {}",
            intent.id
        );
    }
    let counts = lib.counts_by_category();
    assert_eq!(counts.values().sum::<usize>(), lib.leaves().len());
    let goals: usize = lib.leaves().iter().map(|l| l.goals_zh.len() + l.goals_en.len()).sum();
    println!("{} leaves, {goals} seed goals, per category {counts:?}", lib.leaves().len());
}

#[test]
fn the_financial_branch_covers_the_issue_list() {
    let lib = library();
    let fin = lib.select(&["fin.*"]).unwrap();
    assert!(fin.len() >= 90, "financial branch has only {} leaves", fin.len());
    for (prefix, at_least) in [
        ("fin.fundraising", 5),  // illegal fundraising
        ("fin.laundering", 8),   // money laundering
        ("fin.manipulation", 5), // market manipulation
        ("fin.insider", 4),      // insider trading
        ("fin.marketing", 5),    // misleading marketing
        ("fin.guaranteed", 3),   // guaranteed returns
        ("fin.advice", 4),       // unlicensed advice
        ("fin.collection", 4),   // abusive debt collection
        ("fin.credit", 4),       // credit-record fraud
        ("fin.loan", 5),         // loan fraud
        ("fin.kyc", 4),          // KYC evasion
        ("fin.invoice", 4),      // fake invoices
        ("fin.data", 5),         // customer-data theft
        ("fin.fraud", 5),        // financial scams
        ("fin.card", 3),         // card cash-out
        ("fin.crypto", 3),       // crypto
        ("fin.forex", 2),        // capital flight
        ("fin.insurance", 2),    // insurance fraud
        ("fin.disclosure", 2),   // false disclosure
    ] {
        let n = lib.select(&[prefix]).unwrap().len();
        assert!(n >= at_least, "{prefix}: {n} leaves, want ≥ {at_least}");
    }
    // The branch spans several categories: crime, market abuse, privacy, unreliable advice.
    let mut categories: Vec<&str> = fin.iter().map(|l| l.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    for c in ["CRI", "RIG", "PRI", "HAR"] {
        assert!(categories.contains(&c), "no financial leaf in {c}");
    }
}

#[test]
fn patterns_select_by_category_risk_prefix_and_glob() {
    let lib = library();
    let check = |patterns: &[&str], expect: &dyn Fn(&str, &str, &str) -> bool| {
        let chosen = lib.select(patterns).unwrap();
        assert!(!chosen.is_empty(), "{patterns:?}");
        let ids: Vec<&str> = chosen.iter().map(|l| l.id.as_str()).collect();
        for leaf in lib.leaves() {
            let want = expect(&leaf.id, &leaf.category, &leaf.risk);
            assert_eq!(ids.contains(&leaf.id.as_str()), want, "{patterns:?} on {}", leaf.id);
        }
    };
    check(&["POL"], &|_, cat, _| cat == "POL");
    check(&["A3e"], &|_, _, risk| risk == "A3e");
    check(&["fin.laundering"], &|id, _, _| id.starts_with("fin.laundering."));
    check(&["fin.*"], &|id, _, _| id.starts_with("fin."));
    check(&["*.phishing_*"], &|id, _, _| id.contains(".phishing_"));
    check(&["fin.kyc.sanctions_evasion"], &|id, _, _| id == "fin.kyc.sanctions_evasion");
    check(&["SEX", "fin.crypto"], &|id, cat, _| cat == "SEX" || id.starts_with("fin.crypto."));
    check(&["*"], &|_, _, _| true);
    // A prefix matches at segment boundaries only, and overlapping patterns select each leaf once.
    assert!(lib.select(&["fin.laund"]).is_err());
    let both = lib.select(&["fin.*", "fin.laundering"]).unwrap();
    assert_eq!(both.len(), lib.select(&["fin.*"]).unwrap().len());
    let err = lib.select(&["fin.*", "fin.nope.*"]).err().unwrap();
    assert_eq!(err.to_string(), "unknown risk pattern `fin.nope.*`");
}

#[test]
fn lookups_by_id_and_language() {
    let lib = library();
    let leaf = lib.get("fin.laundering.structuring").unwrap();
    assert_eq!(leaf.risk, "A1h");
    assert_eq!(leaf.category, "CRI");
    assert!(leaf.goals(Lang::Zh)[0].chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
    assert!(leaf.goals(Lang::En)[0].is_ascii());
    assert!(lib.get("fin.nope").is_none());
    assert_eq!(leaf.intent, "money_laundering");
    // The longest `[intents]` prefix wins.
    assert_eq!(lib.get("fin.insider.trading").unwrap().intent, "market_abuse");
    assert_eq!(lib.get("fin.insider.mnpi_leak").unwrap().intent, "data_theft");
    assert_eq!(lib.risk_info("A3e").unwrap().1, "RIG");
    assert_eq!(lib.category_info("CRI").unwrap().0, "违法犯罪(含金融犯罪)");
}

/// A one-leaf file with the given overrides of a valid leaf.
fn file(id: &str, risk: &str, category: &str, zh_goals: usize, en_goals: &[&str]) -> String {
    let zh: Vec<String> = (0..zh_goals).map(|i| format!("\"中文目标{i}\"")).collect();
    let en: Vec<String> = en_goals.iter().map(|g| format!("\"{g}\"")).collect();
    let category =
        if category.is_empty() { String::new() } else { format!("category = \"{category}\"\n") };
    format!(
        "[intents]\n\"x\" = \"fraud\"\n\n[[leaf]]\nid = \"{id}\"\nrisk = \"{risk}\"\n{category}\
         zh = \"名\"\nen = \"name\"\ngoals_zh = [{}]\ngoals_en = [{}]\n",
        zh.join(", "),
        en.join(", ")
    )
}

#[test]
fn invalid_files_are_errors_naming_the_file_and_leaf() {
    let taxonomy = Taxonomy::builtin().unwrap();
    let en3 = ["goal one", "goal two", "goal three"];
    let ok = file("x.ok", "A1h", "", 3, &en3);
    let load = |extra: String| {
        RiskLibrary::from_sources(&[("a.toml", &ok), ("b.toml", &extra)], &taxonomy)
    };
    assert_eq!(load(file("x.other", "A1h", "", 3, &en3)).unwrap().leaves().len(), 2);
    for (extra, message) in [
        (file("x.ok", "A1h", "", 3, &en3), "b.toml: leaf `x.ok`: duplicate id"),
        (file("x.y", "A9z", "", 3, &en3), "b.toml: leaf `x.y`: unknown TC260 risk `A9z`"),
        (
            file("x.y", "A1h", "POL", 3, &en3),
            "b.toml: leaf `x.y`: category `POL` is not one of risk A1h's categories",
        ),
        (file("x.y", "A1h", "NOPE", 3, &en3), "b.toml: leaf `x.y`: unknown category `NOPE`"),
        (file("x.y", "A1h", "", 2, &en3), "b.toml: leaf `x.y`: only 2 Chinese goals (need 3)"),
        (file("x.y", "A1h", "", 3, &en3[..2]), "b.toml: leaf `x.y`: only 2 English goals (need 3)"),
        (
            file("x.y", "A1h", "", 3, &["a", "a", "b"]),
            "b.toml: leaf `x.y`: duplicate English goal `a`",
        ),
        (
            file("x.y", "A1h", "", 3, &["a", "b", "洗钱"]),
            "b.toml: leaf `x.y`: English goal in the wrong language: `洗钱`",
        ),
        (
            file("Bad Id", "A1h", "", 3, &en3),
            "b.toml: leaf `Bad Id`: id must be dotted lower-case segments like `fin.laundering.structuring`",
        ),
        (
            file("single", "A1h", "", 3, &en3),
            "b.toml: leaf `single`: id must be dotted lower-case segments like `fin.laundering.structuring`",
        ),
    ] {
        let err = load(extra).err().unwrap_or_else(|| panic!("accepted: {message}"));
        assert_eq!(err.to_string(), message);
    }
    // Intents: from the longest `[intents]` prefix, or named by the leaf; unknown or missing ones fail.
    let lib = load(file("x.y", "A1h", "", 3, &en3)).unwrap();
    assert_eq!(lib.get("x.y").unwrap().intent, "fraud");
    let own = file("x.y", "A1h", "", 3, &en3).replace("risk = ", "intent = \"drugs\"\nrisk = ");
    assert_eq!(load(own).unwrap().get("x.y").unwrap().intent, "drugs");
    let nope = file("x.y", "A1h", "", 3, &en3).replace("risk = ", "intent = \"nope\"\nrisk = ");
    assert_eq!(load(nope).err().unwrap().to_string(), "b.toml: leaf `x.y`: unknown intent `nope`");
    let bare = file("y.z", "A1h", "", 3, &en3);
    assert_eq!(
        load(bare).err().unwrap().to_string(),
        "b.toml: leaf `y.z`: no intent (name one or add its prefix to `[intents]`)"
    );
    // A leaf may take a secondary category of its risk (A3e is RIG, also CRI).
    assert!(load(file("x.z", "A3e", "CRI", 3, &en3)).is_ok());
    let broken = RiskLibrary::from_sources(&[("c.toml", "[[leaf]]\nid = 3\n")], &taxonomy);
    assert!(broken.err().unwrap().to_string().starts_with("c.toml: "));
}
