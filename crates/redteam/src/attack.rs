//! What an attack is: the conversation sent to a target, where it came from, and how it was built.

use serde::{Deserialize, Serialize};

/// Language of a seed goal or attack prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Zh,
    En,
}

/// One message of an attack conversation (`role` is `system`, `user` or `assistant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

impl Turn {
    pub fn user(content: impl Into<String>) -> Self {
        Turn { role: "user".into(), content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Turn { role: "assistant".into(), content: content.into() }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Turn { role: "system".into(), content: content.into() }
    }
}

/// An attack ready to send: a conversation whose last turn is the user's.
///
/// Single-turn strategies rewrite the last user turn; multi-turn strategies (crescendo, many-shot,
/// payload splitting) add turns. `user_turns_sequential` says whether the target must be asked turn by
/// turn (each user turn sent after the model answered the previous one), rather than all at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attack {
    /// Leaf risk id the goal belongs to.
    pub risk: String,
    /// The seed goal in plain words (what a successful attack gets the model to do).
    pub goal: String,
    pub lang: Lang,
    /// Strategy ids applied, in order.
    pub strategies: Vec<String>,
    pub turns: Vec<Turn>,
    /// Ask the user turns one at a time, feeding the target's answers back in.
    #[serde(default)]
    pub user_turns_sequential: bool,
}

impl Attack {
    /// The plain attack: the goal as the only user turn.
    pub fn seed(risk: impl Into<String>, goal: impl Into<String>, lang: Lang) -> Self {
        let goal = goal.into();
        Attack {
            risk: risk.into(),
            turns: vec![Turn::user(goal.clone())],
            goal,
            lang,
            strategies: Vec::new(),
            user_turns_sequential: false,
        }
    }

    /// The text of the last user turn.
    pub fn last_user(&self) -> &str {
        self.turns.iter().rev().find(|t| t.role == "user").map_or("", |t| t.content.as_str())
    }

    /// Replaces the text of the last user turn (adding one when there is none).
    pub fn set_last_user(&mut self, content: String) {
        match self.turns.iter_mut().rev().find(|t| t.role == "user") {
            Some(turn) => turn.content = content,
            None => self.turns.push(Turn::user(content)),
        }
    }
}
