//! Conversation-level judging: risk accumulates over user turns so slow escalation (crescendo) and
//! payloads split across turns are caught, and repeated unsafe attempts throttle the session.

use serde::{Deserialize, Serialize};

use crate::{Guard, Judgement, Policy, Verdict, policy::Action};

/// One message of a conversation.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Turn {
    /// `user`, `assistant`, `system` or `tool`.
    pub role: String,
    /// The message text.
    pub content: String,
}

/// A conversation, oldest turn first.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Conversation {
    /// The turns.
    pub turns: Vec<Turn>,
}

/// How much of the previous accumulated risk carries into the next turn.
const DECAY: f32 = 0.6;
/// Accumulated risk at which a conversation counts as escalating.
const ESCALATION: f32 = 1.1;

impl Guard {
    /// Judges the last user turn in the light of the earlier ones: the judgement of the last turn
    /// alone, raised when the user turns together are riskier (split payloads) or when risk has been
    /// building up over turns, and `throttle` when the session keeps trying.
    pub fn check_conversation(&self, conversation: &Conversation, policy: &Policy) -> Judgement {
        let user: Vec<&str> = conversation
            .turns
            .iter()
            .filter(|t| t.role == "user")
            .map(|t| t.content.as_str())
            .collect();
        let Some(last) = user.last() else {
            return self.check_input("", policy);
        };
        let mut judgement = self.check_input(last, policy);
        if user.len() == 1 {
            return judgement;
        }
        let mut accumulated = 0.0f32;
        let mut unsafe_turns = 0;
        let window = policy.throttle.window.max(1);
        let start = user.len().saturating_sub(window);
        for (i, turn) in user.iter().enumerate() {
            let j = if i + 1 == user.len() {
                judgement.clone()
            } else {
                self.check_input(turn, policy)
            };
            accumulated = accumulated * DECAY + j.scores.risk;
            if i >= start && j.verdict == Verdict::Unsafe {
                unsafe_turns += 1;
            }
        }
        let recent = user[user.len().saturating_sub(4)..].join("\n");
        let joined = self.check_input(&recent, policy);
        let escalating = accumulated >= ESCALATION && judgement.scores.risk >= 0.2;
        if joined.verdict > judgement.verdict || escalating {
            let verdict = if escalating {
                joined.verdict.max(Verdict::Controversial)
            } else {
                joined.verdict
            };
            let mut raised = joined;
            raised.verdict = verdict.max(judgement.verdict);
            if !raised.techniques.iter().any(|t| t == "multi_turn_escalation") {
                raised.techniques.push("multi_turn_escalation".into());
            }
            if raised.verdict == Verdict::Unsafe
                && raised.action.severity() < policy.actions.unsafe_.severity()
            {
                raised.action = if policy.shadow { Action::Allow } else { policy.actions.unsafe_ };
            }
            judgement = raised;
        }
        if unsafe_turns >= policy.throttle.after_unsafe && judgement.verdict == Verdict::Unsafe {
            if policy.shadow {
                judgement.shadow_action = Some(Action::Throttle);
            } else {
                judgement.action = Action::Throttle;
            }
        }
        judgement
    }
}
