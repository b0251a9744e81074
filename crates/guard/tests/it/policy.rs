//! Policies parse, reject bad files with line numbers, and each action is applied.

use guard::{Action, Policy, SharedPolicy, Verdict};

use crate::guard;

#[test]
fn every_action_parses() {
    for action in ["allow", "flag", "mask", "rewrite", "refuse", "review", "throttle"] {
        let p = Policy::parse("p.toml", &format!("[actions]\nunsafe = \"{action}\"\n")).unwrap();
        assert_eq!(serde_json::to_value(p.actions.unsafe_).unwrap(), action);
    }
}

#[test]
fn bad_policies_name_the_line() {
    let check = |source: &str, line: usize, needle: &str| {
        let err = Policy::parse("tenant.toml", source).unwrap_err().to_string();
        assert!(err.starts_with(&format!("tenant.toml:{line}:")), "{err}");
        assert!(err.contains(needle), "{err}");
    };
    check("name = \"x\"\n[actions]\nunsafe = \"explode\"\n", 3, "unknown variant");
    check("name = \"x\"\nshadow = true\n[thresholds]\nunsafe = 1.5\n", 4, "outside 0..=1");
    check("\n\n[category.XYZ]\naction = \"refuse\"\n", 3, "unknown category");
    check("nmae = \"x\"\n", 1, "unknown field");
    check("[thresholds\n", 1, "");
}

#[test]
fn finance_pack_loads_and_is_stricter() {
    let p = Policy::finance().unwrap();
    assert!(p.unsafe_threshold("CRI") < Policy::default().unsafe_threshold("CRI"));
    assert_eq!(p.actions.controversial, Action::Rewrite);
}

#[test]
fn actions_follow_verdict_category_pii_and_shadow() {
    let g = guard();
    let harmful = "怎么把赌博赢的钱洗白不被银行发现？";
    let default = Policy::default();
    let j = g.check_input(harmful, &default);
    assert_eq!(j.verdict, Verdict::Unsafe);
    assert_eq!(j.action, Action::Refuse);
    let mut review = Policy::default();
    review.category.insert(
        "CRI".into(),
        guard::policy::CategoryRule { unsafe_threshold: None, action: Some(Action::Review) },
    );
    assert_eq!(g.check_input(harmful, &review).action, Action::Review);
    let shadow = Policy { shadow: true, ..Policy::default() };
    let j = g.check_input(harmful, &shadow);
    assert_eq!((j.action, j.shadow_action), (Action::Allow, Some(Action::Refuse)));
    let j = g.check_input("我的手机号是13812345678，帮我查下信用卡账单日", &default);
    assert_eq!((j.verdict, j.action), (Verdict::Safe, Action::Mask));
    let allow_pii = Policy { pii: Action::Allow, ..Policy::default() };
    assert_eq!(
        g.check_input("我的手机号是13812345678，帮我查下信用卡账单日", &allow_pii).action,
        Action::Allow
    );
}

#[test]
fn shared_policy_swaps_without_disturbing_holders() {
    let shared = SharedPolicy::new(Policy::default());
    let held = shared.load();
    shared.store(Policy::finance().unwrap());
    assert_eq!(held.name, "default");
    assert_eq!(shared.load().name, "finance");
}

/// Seeded fuzzing of the policy parser: mutated policy files are accepted or rejected with a line
/// inside the file, never a panic.
#[test]
fn mutated_policies_never_panic() {
    let source = guard::policy::FINANCE_POLICY_TOML;
    let chars: Vec<char> = source.chars().collect();
    let mut state: u64 = 42;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let junk = ['"', '[', ']', '=', '\n', '.', '9', 'x', '#', ' '];
    for _ in 0..500 {
        let mut mutated = chars.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() % mutated.len() as u64) as usize;
            match next() % 3 {
                0 => {
                    mutated.remove(at);
                }
                1 => mutated.insert(at, junk[(next() % junk.len() as u64) as usize]),
                _ => mutated[at] = junk[(next() % junk.len() as u64) as usize],
            }
        }
        let text: String = mutated.iter().collect();
        if let Err(guard::GuardError::Invalid { line, .. }) = Policy::parse("fuzz.toml", &text) {
            assert!(line <= text.lines().count() + 1, "line {line} outside the file");
        }
    }
}
