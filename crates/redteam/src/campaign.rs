//! Campaign files and planning. A campaign (TOML) names the risks, the strategies and chains, the
//! target, the judges and the budget. Planning expands risks × goals × strategies into attempt rows,
//! deterministically from the seed: the same file plans the same attempts, with the same ids and the
//! same attack text, on every run and every machine — which is what lets a killed campaign resume and
//! several workers share one.

use std::sync::Arc;

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use crate::{
    RedteamError,
    attack::{Attack, Lang},
    judge::JudgesConfig,
    pair::AttackerConfig,
    risks::RiskLibrary,
    strategy,
    target::TargetConfig,
};

/// A whole campaign file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    /// The campaign's name: its key in the store (a rerun with the same name resumes it).
    pub name: String,
    /// Seed of every random choice in planning and in the strategies.
    #[serde(default)]
    pub seed: u64,
    /// Free text for the report.
    #[serde(default)]
    pub description: String,
    /// Which risks and goals.
    #[serde(default)]
    pub risks: RiskSelection,
    /// Which strategies and chains.
    #[serde(default)]
    pub strategies: StrategySelection,
    /// What is attacked.
    pub target: TargetConfig,
    /// Who decides success.
    #[serde(default)]
    pub judges: JudgesConfig,
    /// The attacker model for LLM-driven strategies (`pair`, `tap`).
    #[serde(default)]
    pub attacker: Option<AttackerConfig>,
    /// Limits.
    #[serde(default)]
    pub budget: Budget,
    /// Goals written in the campaign file (`[[goals]]`), e.g. an institution's own risks; used
    /// alone when `[risks] include` is empty, else added to the library's.
    #[serde(default)]
    pub goals: Vec<GoalConfig>,
}

/// A `[[goals]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalConfig {
    /// Risk id the goal belongs to.
    pub risk: String,
    /// Category for the report (one of the guard's eight: POL VIO SEX CRI DIS PRI RIG HAR).
    pub category: String,
    pub lang: Lang,
    pub goal: String,
}

/// `[risks]`: risk-id patterns (`*` matches any run of characters), languages, goals per risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSelection {
    /// Patterns of leaf ids, category ids or names to include (empty: all).
    #[serde(default)]
    pub include: Vec<String>,
    /// Patterns to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Languages of the goals.
    #[serde(default = "both_langs")]
    pub langs: Vec<Lang>,
    /// Goals per risk and language (0: all).
    #[serde(default)]
    pub goals_per_risk: usize,
    /// Goals skipped at the start of each risk's list (so one campaign can train on the first goals
    /// and another test on the rest).
    #[serde(default)]
    pub skip_goals: usize,
}

fn both_langs() -> Vec<Lang> {
    vec![Lang::Zh, Lang::En]
}

impl Default for RiskSelection {
    fn default() -> Self {
        RiskSelection {
            include: Vec::new(),
            exclude: Vec::new(),
            langs: both_langs(),
            goals_per_risk: 0,
            skip_goals: 0,
        }
    }
}

/// `[strategies]`: strategy ids and chains (`base64+dan`); `plain` is the goal as it is, `*` every
/// single strategy, `pair` / `tap` the LLM-driven attacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySelection {
    /// Ids and chains.
    #[serde(default = "plain", rename = "use")]
    pub chains: Vec<String>,
}

fn plain() -> Vec<String> {
    vec![PLAIN.into()]
}

impl Default for StrategySelection {
    fn default() -> Self {
        StrategySelection { chains: plain() }
    }
}

/// The id of "no strategy": the seed goal as it is.
pub const PLAIN: &str = "plain";

/// `[budget]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Attempts planned at most (a seeded sample of the full grid; 0: the whole grid).
    #[serde(default)]
    pub max_attacks: usize,
    /// Stop claiming once the target reported this many tokens (0: no limit).
    #[serde(default)]
    pub max_tokens: u64,
    /// Stop claiming after this many seconds of one run (0: no limit); a rerun continues.
    #[serde(default)]
    pub max_time_secs: f64,
    /// Attempts in flight per worker process.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_concurrency() -> usize {
    8
}

impl Default for Budget {
    fn default() -> Self {
        Budget { max_attacks: 0, max_tokens: 0, max_time_secs: 0.0, concurrency: 8 }
    }
}

impl CampaignConfig {
    /// Parses a campaign file; errors name the file and what is wrong.
    /// The error's `path` is `file:line`.
    pub fn parse(path: &str, source: &str) -> Result<CampaignConfig, RedteamError> {
        let config: CampaignConfig = toml::from_str(source).map_err(|e| {
            let line = e
                .span()
                .map_or(1, |s| source[..s.start.min(source.len())].matches('\n').count() + 1);
            RedteamError::Config {
                path: format!("{path}:{line}"),
                message: e.message().replace('\n', " "),
            }
        })?;
        let bad = |message: String| RedteamError::Config { path: format!("{path}:1"), message };
        unknown_keys(path, source)?;
        if config.name.trim().is_empty() {
            return Err(bad("`name` is empty".into()));
        }
        if config.strategies.chains.is_empty() {
            return Err(bad("[strategies] `use` is empty".into()));
        }
        if config.risks.langs.is_empty() {
            return Err(bad("[risks] `langs` is empty".into()));
        }
        if config.budget.concurrency == 0 {
            return Err(bad("[budget] `concurrency` must be at least 1".into()));
        }
        Ok(config)
    }
}

/// Keys every endpoint table takes (pacing included).
const PACING_KEYS: &[&str] = &["rate", "concurrency", "timeout_secs", "retries", "backoff_ms"];
const ENDPOINT_KEYS: &[&str] = &["base_url", "model", "api_key", "api_key_env"];
const TARGET_KEYS: &[&str] = &[
    "kind",
    "base_url",
    "model",
    "api_key",
    "api_key_env",
    "headers",
    "system",
    "max_tokens",
    "temperature",
    "method",
    "url",
    "body",
    "reply_pointer",
    "blocked_pointer",
];

/// Tables whose structs flatten the pacing fields cannot use `deny_unknown_fields`; their keys are
/// checked here, so a misspelt `rate` is an error rather than an unlimited campaign.
fn unknown_keys(path: &str, source: &str) -> Result<(), RedteamError> {
    let Ok(doc) = source.parse::<toml::Table>() else { return Ok(()) };
    let tables: [(&str, Option<&toml::Value>, &[&str]); 3] = [
        ("target", doc.get("target"), TARGET_KEYS),
        ("judges.llm", doc.get("judges").and_then(|j| j.get("llm")), &["pass"]),
        ("attacker", doc.get("attacker"), &["iterations", "branches", "keep"]),
    ];
    for (name, table, own) in tables {
        let Some(toml::Value::Table(table)) = table else { continue };
        for key in table.keys() {
            let known = own.contains(&key.as_str())
                || PACING_KEYS.contains(&key.as_str())
                || (name != "target" && ENDPOINT_KEYS.contains(&key.as_str()));
            if !known {
                let line = source
                    .lines()
                    .position(|l| l.trim_start().starts_with(key.as_str()))
                    .map_or(1, |i| i + 1);
                return Err(RedteamError::Config {
                    path: format!("{path}:{line}"),
                    message: format!("unknown key `{key}` in [{name}]"),
                });
            }
        }
    }
    Ok(())
}

/// A seed goal of a leaf risk, as planning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// Leaf risk id.
    pub risk: String,
    /// Top-level category (one of the guard's eight) for the report's matrix.
    pub category: String,
    /// The goal.
    pub goal: String,
    pub lang: Lang,
    /// Position of the goal among its risk's goals in that language.
    pub index: usize,
}

/// The campaign file's own `[[goals]]` as seeds (numbered per risk and language in file order).
pub fn inline_seeds(config: &CampaignConfig) -> Vec<Seed> {
    let mut counters: std::collections::BTreeMap<(String, &'static str), usize> =
        Default::default();
    config
        .goals
        .iter()
        .map(|g| {
            let n = counters.entry((g.risk.clone(), lang_code(g.lang))).or_default();
            *n += 1;
            Seed {
                risk: g.risk.clone(),
                category: g.category.clone(),
                goal: g.goal.clone(),
                lang: g.lang,
                index: *n - 1,
            }
        })
        .collect()
}

/// Rewrites a seed attack (a strategy chain), drawing from the attempt's RNG.
pub type Rewrite = Arc<dyn Fn(Attack, &mut StdRng) -> Attack + Send + Sync>;

/// A strategy chain ready to plan with.
#[derive(Clone)]
pub struct Chain {
    /// The chain's id as written (`base64+dan`, `plain`).
    pub id: String,
    /// The rewrite; `None` for LLM-driven chains (`pair`, `tap`), refined by the attacker model at
    /// run time from the seed goal.
    pub rewrite: Option<Rewrite>,
    /// Languages the chain rewrites (a chain that means nothing for a language is not planned for it).
    pub langs: Vec<Lang>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("id", &self.id).field("langs", &self.langs).finish()
    }
}

/// One planned attempt: a row of the attempts table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// Stable id: `risk/lang/goal-index/chain`.
    pub id: String,
    /// Execution order (a seeded shuffle, so a partial run samples the grid evenly).
    pub idx: i64,
    pub risk: String,
    pub category: String,
    /// The chain id.
    pub strategy: String,
    pub lang: Lang,
    /// The attack to send (for LLM-driven chains, the seed the attacker starts from).
    pub attack: Attack,
}

/// FNV-1a over the parts, for per-attempt RNG seeds that do not depend on planning order.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Lower-case language code.
pub fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "zh",
        Lang::En => "en",
    }
}

/// Expands seeds × chains into attempts: each chain applied to the seed attack with an RNG seeded by
/// (campaign seed, attempt id), then a seeded shuffle gives the execution order, and `max_attacks`
/// (when nonzero) keeps the first ones of it.
pub fn plan(seeds: &[Seed], chains: &[Chain], seed: u64, max_attacks: usize) -> Vec<Planned> {
    let mut rows = Vec::with_capacity(seeds.len() * chains.len());
    for s in seeds {
        for chain in chains.iter().filter(|c| c.langs.contains(&s.lang)) {
            let id = format!("{}/{}/{}/{}", s.risk, lang_code(s.lang), s.index, chain.id);
            let mut rng = StdRng::seed_from_u64(fnv1a(&[&seed.to_le_bytes(), id.as_bytes()]));
            let mut attack = Attack::seed(s.risk.clone(), s.goal.clone(), s.lang);
            if let Some(rewrite) = &chain.rewrite {
                attack = rewrite(attack, &mut rng);
            }
            attack.strategies = if chain.id == PLAIN {
                Vec::new()
            } else {
                chain.id.split('+').map(str::to_owned).collect()
            };
            rows.push(Planned {
                id,
                idx: 0,
                risk: s.risk.clone(),
                category: s.category.clone(),
                strategy: chain.id.clone(),
                lang: s.lang,
                attack,
            });
        }
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows.shuffle(&mut StdRng::seed_from_u64(seed));
    if max_attacks > 0 {
        rows.truncate(max_attacks);
    }
    for (i, row) in rows.iter_mut().enumerate() {
        row.idx = i as i64;
    }
    rows
}

/// The seeds a campaign attacks: the library leaves its `[risks]` patterns select (all when it has
/// neither patterns nor `[[goals]]`), minus the excluded ones, in the chosen languages, then its own
/// `[[goals]]`.
pub fn resolve_seeds(
    config: &CampaignConfig,
    library: &RiskLibrary,
) -> Result<Vec<Seed>, RedteamError> {
    let selection = &config.risks;
    let mut seeds = Vec::new();
    if !selection.include.is_empty() || config.goals.is_empty() {
        let include: Vec<&str> = if selection.include.is_empty() {
            vec!["*"]
        } else {
            selection.include.iter().map(String::as_str).collect()
        };
        let per_risk =
            if selection.goals_per_risk == 0 { usize::MAX } else { selection.goals_per_risk };
        for leaf in library.select(&include)? {
            if selection.exclude.iter().any(|p| library.matches(p.trim(), leaf)) {
                continue;
            }
            for &lang in &selection.langs {
                let goals = leaf.goals(lang).iter().enumerate().skip(selection.skip_goals);
                for (index, goal) in goals.take(per_risk) {
                    seeds.push(Seed {
                        risk: leaf.id.clone(),
                        category: leaf.category.clone(),
                        goal: goal.clone(),
                        lang,
                        index,
                    });
                }
            }
        }
    }
    seeds.extend(inline_seeds(config).into_iter().filter(|s| selection.langs.contains(&s.lang)));
    Ok(seeds)
}

/// The chains a campaign's `[strategies] use` names: `plain`, `*` (every built-in strategy alone),
/// `pair` / `tap` (LLM-driven), or chains of strategy ids joined by `+`.
pub fn resolve_chains(ids: &[String]) -> Result<Vec<Chain>, RedteamError> {
    let both = vec![Lang::Zh, Lang::En];
    let mut out: Vec<Chain> = Vec::new();
    let mut push = |id: &str| -> Result<(), RedteamError> {
        if out.iter().any(|c| c.id == id) {
            return Ok(());
        }
        if id == PLAIN || crate::runner::is_llm_driven(id) {
            out.push(Chain { id: id.to_owned(), rewrite: None, langs: both.clone() });
            return Ok(());
        }
        let chain = Arc::new(strategy::Chain::parse(id)?);
        let langs = both.iter().copied().filter(|l| chain.supports(*l)).collect();
        let rewrite: Rewrite = Arc::new(move |attack, rng| chain.apply(attack, rng));
        out.push(Chain { id: id.trim().to_owned(), rewrite: Some(rewrite), langs });
        Ok(())
    };
    for id in ids {
        let id = id.trim();
        if id == "*" {
            for s in strategy::ids() {
                push(s)?;
            }
        } else {
            push(id)?;
        }
    }
    Ok(out)
}
