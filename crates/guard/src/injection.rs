//! Indirect prompt injection: retrieved documents and tool outputs are data, so any instruction in them
//! aimed at the model ("ignore previous instructions", fake system turns, role tags) is suspicious.

use serde::Serialize;

use crate::{Guard, Policy, guard::Direction};

/// Markers of text addressed to a model rather than to a reader, normalised.
const MARKERS: &[&str] = &[
    "<|im_start|>",
    "<|system|>",
    "[inst]",
    "<<sys>>",
    "### instruction",
    "system:",
    "assistant:",
    "you are now",
    "you must now",
    "from now on you",
    "new instructions",
    "ignore previous",
    "ignore all previous",
    "ignore the above",
    "disregard",
    "do not tell the user",
    "send the user's",
    "visit this url",
    "请忽略",
    "忽略之前",
    "忽略以上",
    "忽略上述",
    "现在你是",
    "从现在开始你",
    "你必须",
    "不要告诉用户",
    "将用户的",
    "系统指令",
    "新的指令",
    "把对话内容发送到",
];

/// The result of scanning one document or tool output.
#[derive(Debug, Clone, Serialize)]
pub struct InjectionReport {
    /// Whether the text should be withheld from the model (or passed with a warning).
    pub suspicious: bool,
    /// 0–1: how strongly the text reads as instructions to the model.
    pub score: f32,
    /// Markers found, with byte offsets in the normalised text.
    pub markers: Vec<(String, usize)>,
    /// Techniques the guard saw in the text.
    pub techniques: Vec<String>,
}

impl Guard {
    /// Scans a retrieved document or tool output for instructions aimed at the model.
    pub fn scan_document(&self, document: &str, policy: &Policy) -> InjectionReport {
        let normalised = text::normalize(document);
        let markers: Vec<(String, usize)> = MARKERS
            .iter()
            .flat_map(|m| normalised.match_indices(m).map(|(at, s)| (s.to_owned(), at)))
            .collect();
        let judgement = self.judge(document, Direction::Input, policy);
        let technique_hit = judgement.techniques.iter().any(|t| {
            matches!(
                t.as_str(),
                "prompt_injection"
                    | "system_prompt_extraction"
                    | "roleplay_jailbreak"
                    | "refusal_suppression"
            )
        });
        let score = (markers.len() as f32 * 0.35 + if technique_hit { 0.5 } else { 0.0 }).min(1.0);
        let mut techniques = judgement.techniques;
        if score >= 0.5 && !techniques.iter().any(|t| t == "indirect_injection") {
            techniques.push("indirect_injection".into());
        }
        InjectionReport { suspicious: score >= 0.5, score, markers, techniques }
    }
}
