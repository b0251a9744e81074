//! Attack strategies: deterministic rewrites of an [`Attack`], composable into chains.
//!
//! Families: `encoding` (the request hidden in an encoding the model reads but a keyword filter does
//! not), `zh_rewrite` (Chinese-specific obfuscation: 拼音, 谐音, 拆字, 火星文, 繁体, 文言, 藏头诗),
//! `template` (jailbreak framings), `structure` (many-shot, payload splitting, code and math wrapping)
//! and `multi_turn` (crescendo). Every strategy rewrites the current last user turn, not the seed goal,
//! so a chain like `base64+dan` wraps the encoded request in the DAN framing.

mod encoding;
mod multi_turn;
mod structure;
mod tables;
mod template;
mod zh;

use std::fmt;

use rand::Rng;
use rand::rngs::StdRng;

use crate::RedteamError;
use crate::attack::{Attack, Lang};

pub use encoding::{base64_encode, hex_encode, morse_normal_form};

/// One attack strategy. `apply` must be deterministic for a given RNG state, so a campaign with a
/// fixed seed builds the same attacks on every run and every machine.
pub trait Strategy: Send + Sync {
    /// Stable snake_case id used in campaign files and reports.
    fn id(&self) -> &'static str;
    /// The family shown in reports (`encoding`, `zh_rewrite`, `template`, `structure`, `multi_turn`).
    fn family(&self) -> &'static str;
    /// Rewrites the attack.
    fn apply(&self, attack: Attack, rng: &mut StdRng) -> Attack;
    /// Recovers the request from a last user turn this strategy wrote, for strategies whose rewrite
    /// is reversible (encodings, payload splitting, scrambling); `None` otherwise. Lets tests prove
    /// that an attack still carries its goal, and lets reports show what a decoded attack asked.
    fn decode(&self, _prompt: &str) -> Option<String> {
        None
    }
    /// Languages of goals the strategy rewrites; for others `apply` returns the attack unchanged
    /// (拼音 of an English goal means nothing). Campaigns skip such pairs.
    fn langs(&self) -> &'static [Lang] {
        &[Lang::Zh, Lang::En]
    }
}

/// Both languages, for [`Strategy::langs`].
const BOTH: &[Lang] = &[Lang::Zh, Lang::En];
/// Chinese goals only.
const ZH_ONLY: &[Lang] = &[Lang::Zh];
/// English goals only.
const EN_ONLY: &[Lang] = &[Lang::En];

/// Every built-in strategy, in a stable order (families together).
pub fn registry() -> Vec<Box<dyn Strategy>> {
    let mut all: Vec<Box<dyn Strategy>> = Vec::new();
    all.extend(encoding::strategies());
    all.extend(zh::strategies());
    all.extend(template::strategies());
    all.extend(structure::strategies());
    all.extend(multi_turn::strategies());
    all
}

/// The ids of every built-in strategy, in registry order.
pub fn ids() -> Vec<&'static str> {
    registry().iter().map(|s| s.id()).collect()
}

/// The strategy with this id.
pub fn by_id(id: &str) -> Result<Box<dyn Strategy>, RedteamError> {
    registry()
        .into_iter()
        .find(|s| s.id() == id)
        .ok_or_else(|| RedteamError::Unknown { kind: "strategy", id: id.to_owned() })
}

/// Several strategies applied in order, written `base64+dan` in campaign files (`plain` or an empty
/// string is the empty chain: the seed goal as it is).
pub struct Chain {
    steps: Vec<Box<dyn Strategy>>,
}

impl Chain {
    /// Parses `a+b+c`; every part must be a known strategy id.
    pub fn parse(spec: &str) -> Result<Self, RedteamError> {
        let spec = spec.trim();
        if spec.is_empty() || spec == "plain" {
            return Ok(Chain { steps: Vec::new() });
        }
        let steps = spec.split('+').map(|id| by_id(id.trim())).collect::<Result<Vec<_>, _>>()?;
        Ok(Chain { steps })
    }

    /// The strategies in application order.
    pub fn steps(&self) -> &[Box<dyn Strategy>] {
        &self.steps
    }

    /// Applies every step in order; each step draws from the same RNG.
    pub fn apply(&self, attack: Attack, rng: &mut StdRng) -> Attack {
        self.steps.iter().fold(attack, |attack, step| step.apply(attack, rng))
    }

    /// Recovers the request from a last user turn the chain wrote, when every step is decodable
    /// (`base64+hex`): the steps' decoders in reverse order.
    pub fn decode(&self, prompt: &str) -> Option<String> {
        self.steps.iter().rev().try_fold(prompt.to_owned(), |text, step| step.decode(&text))
    }

    /// Whether every step rewrites goals of this language.
    pub fn supports(&self, lang: Lang) -> bool {
        self.steps.iter().all(|s| s.langs().contains(&lang))
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return f.write_str("plain");
        }
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(step.id())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chain({self})")
    }
}

/// Picks one of `options` with the RNG (the first when there is only one, without drawing).
fn pick<'a>(rng: &mut StdRng, options: &[&'a str]) -> &'a str {
    match options.len() {
        0 => "",
        1 => options[0],
        n => options[rng.random_range(0..n)],
    }
}

/// Records that `id` was applied and sets the new last user turn.
fn rewrite(mut attack: Attack, id: &str, prompt: String) -> Attack {
    attack.set_last_user(prompt);
    attack.strategies.push(id.to_owned());
    attack
}

/// Fills `{goal}` in a template (once, so a goal that itself contains `{goal}` stays literal). When
/// the template's sentence goes on after the slot, the goal's own closing punctuation is dropped
/// ("比如：{goal}。" must not read "…监测。。").
fn fill(template: &str, goal: &str) -> String {
    let Some(at) = template.find("{goal}") else { return template.to_owned() };
    let after = &template[at + "{goal}".len()..];
    let continues = after.chars().next().is_some_and(|c| !c.is_whitespace());
    let goal = if continues {
        goal.trim_end_matches(['。', '.', '！', '!', '？', '?', '；', ';'])
    } else {
        goal
    };
    format!("{}{goal}{after}", &template[..at])
}
