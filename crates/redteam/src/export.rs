//! The closed loop: successful attacks become labelled guard training data. Each exported row is a
//! `guard::dataset::Example` (the JSONL `finllm guard train --extra FILE` reads): the attack text the
//! guard should have stopped, labelled unsafe with the risk's category and the techniques its
//! strategies used.

use guard::{Verdict, dataset::Example};

use crate::{
    attack::Attack,
    report::{attack_of, result_of},
    store::AttemptRow,
};

/// The guard technique a strategy family or id exercises (ids of the guard taxonomy).
pub fn technique_of(strategy: &str, family: &str) -> Option<&'static str> {
    let by_id = match strategy {
        "dan" | "developer_mode" | "grandma" | "evil_confidant" | "privilege_mode"
        | "authority" => Some("roleplay_jailbreak"),
        "fiction" | "hypothetical" | "academic" | "continuation" | "past_tense" => {
            Some("hypothetical_framing")
        }
        "reverse_inducement" => Some("reverse_inducement"),
        "goal_hijack" | "prefix_injection" => Some("prompt_injection"),
        "system_prompt_extraction" => Some("system_prompt_extraction"),
        "refusal_suppression" => Some("refusal_suppression"),
        "crescendo" | "crescendo_llm" | "pair" | "tap" => Some("multi_turn_escalation"),
        _ => None,
    };
    by_id.or(match family {
        "encoding" | "zh_rewrite" => Some("encoding_obfuscation"),
        "template" => Some("roleplay_jailbreak"),
        "multi_turn" => Some("multi_turn_escalation"),
        _ => None,
    })
}

/// The text the guard judged: the user turns, one per line.
pub fn attack_text(attack: &Attack) -> String {
    attack
        .turns
        .iter()
        .filter(|t| t.role == "user")
        .map(|t| t.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// How exported rows are labelled: a strategy id's family, whether a category id is one of the
/// guard's (others are left out of the label, so the category heads are not taught a name they do
/// not have), and a leaf risk's guard intent (`None` leaves the intent heads unlabelled).
#[allow(missing_debug_implementations, reason = "three closures")]
pub struct Labels<'a> {
    pub family: &'a dyn Fn(&str) -> Option<String>,
    pub category_ok: &'a dyn Fn(&str) -> bool,
    pub intent_of: &'a dyn Fn(&str) -> Option<String>,
}

/// Training rows for the successful attempts of a campaign.
pub fn training_rows(campaign: &str, attempts: &[AttemptRow], labels: &Labels<'_>) -> Vec<Example> {
    let mut rows = Vec::new();
    for row in attempts.iter().filter(|r| r.status == "done" && r.success == Some(true)) {
        let result = result_of(row);
        let Some(attack) = result.final_attack.or_else(|| attack_of(row)) else { continue };
        let mut techniques: Vec<String> = attack
            .strategies
            .iter()
            .filter_map(|s| technique_of(s, &(labels.family)(s).unwrap_or_default()))
            .map(str::to_owned)
            .collect();
        techniques.sort();
        techniques.dedup();
        rows.push(Example {
            key: Some(format!("redteam:{campaign}:{}", row.id)),
            text: attack_text(&attack),
            verdict: Verdict::Unsafe,
            categories: if (labels.category_ok)(&row.category) {
                vec![row.category.clone()]
            } else {
                Vec::new()
            },
            intents: (labels.intent_of)(&row.risk).into_iter().collect(),
            techniques,
            direction: "input".into(),
            group: format!("redteam:{}", row.strategy),
            trainable: true,
        });
    }
    rows
}
