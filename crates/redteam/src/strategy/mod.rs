//! Attack strategies: deterministic rewrites of an [`Attack`], composable into chains.

use rand::rngs::StdRng;

use crate::attack::Attack;

/// One attack strategy. `apply` must be deterministic for a given RNG state, so a campaign with a
/// fixed seed builds the same attacks on every run and every machine.
pub trait Strategy: Send + Sync {
    /// Stable snake_case id used in campaign files and reports.
    fn id(&self) -> &'static str;
    /// The family shown in reports (`encoding`, `zh_rewrite`, `template`, `structure`, `multi_turn`).
    fn family(&self) -> &'static str;
    /// Rewrites the attack.
    fn apply(&self, attack: Attack, rng: &mut StdRng) -> Attack;
}
