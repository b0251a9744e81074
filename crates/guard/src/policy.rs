//! Per-tenant policy (TOML): thresholds and actions per verdict and per category, PII handling,
//! throttling, refusal templates and shadow mode. A bad file is an error naming its line.
//!
//! Policies live behind [`SharedPolicy`] (an `Arc` swapped under a lock), so the server can reload a
//! file while requests in flight keep the policy they started with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::GuardError;

/// What happens to a judged text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Pass it on.
    Allow,
    /// Pass it on and record the judgement for review.
    Flag,
    /// Pass it on with PII replaced by placeholders.
    Mask,
    /// Answer with safe guidance instead (正向引导).
    Rewrite,
    /// Refuse with the policy's template.
    Refuse,
    /// Hold for a human reviewer.
    Review,
    /// Refuse and slow the session down after repeated attempts.
    Throttle,
}

impl Action {
    /// Severity order, used to combine actions (the stricter wins).
    pub const fn severity(self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Flag => 1,
            Action::Mask => 2,
            Action::Rewrite => 3,
            Action::Review => 4,
            Action::Refuse => 5,
            Action::Throttle => 6,
        }
    }
}

/// Thresholds on calibrated scores.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Risk score at or above which a text is at least `controversial`.
    pub controversial: f32,
    /// For a text at least `controversial`: P(unsafe | risky) at or above which it is `unsafe`.
    #[serde(rename = "unsafe")]
    pub unsafe_: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { controversial: 0.4, unsafe_: 0.6 }
    }
}

/// Rules for one output category.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    /// Unsafe threshold for texts in this category (overrides the global one, lower is stricter).
    #[serde(rename = "unsafe")]
    pub unsafe_threshold: Option<f32>,
    /// Action when a text of this category is unsafe.
    pub action: Option<Action>,
}

/// Actions per verdict.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerdictActions {
    /// For `safe`.
    pub safe: Action,
    /// For `controversial`.
    pub controversial: Action,
    /// For `unsafe`.
    #[serde(rename = "unsafe")]
    pub unsafe_: Action,
}

impl Default for VerdictActions {
    fn default() -> Self {
        VerdictActions { safe: Action::Allow, controversial: Action::Flag, unsafe_: Action::Refuse }
    }
}

/// Throttling after repeated unsafe attempts in one conversation.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Throttle {
    /// Unsafe user turns (within `window`) after which the session is throttled.
    pub after_unsafe: usize,
    /// How many recent turns count.
    pub window: usize,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { after_unsafe: 3, window: 10 }
    }
}

/// Message templates.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Templates {
    /// Sent instead of an answer when refusing.
    pub refuse: String,
    /// Sent (or given to the model as guidance) when rewriting.
    pub rewrite: String,
    /// Replaces the rest of a stream stopped mid-way.
    pub stream_stop: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            refuse: "抱歉，这个问题我无法协助。如需帮助，请咨询正规机构或拨打相关服务热线。".into(),
            rewrite:
                "这个话题需要谨慎对待。我可以从合法合规、客观中立的角度为您介绍相关知识与风险。"
                    .into(),
            stream_stop: "……（该回答已被安全策略中止）".into(),
        }
    }
}

/// When the LLM judge is asked (only when the guard has one, see `Guard::with_judge`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgePolicy {
    /// Whether to consult the judge at all.
    pub enabled: bool,
    /// Lower end of the uncertain band: texts whose highest score (risk or unsafe) is below it are
    /// left to the classifier.
    pub low: f32,
    /// Upper end of the uncertain band: above it the classifier is trusted.
    pub high: f32,
    /// Time budget per judge call, milliseconds; past it the classifier's verdict stands.
    pub budget_ms: u64,
}

impl Default for JudgePolicy {
    fn default() -> Self {
        JudgePolicy { enabled: true, low: 0.25, high: 0.8, budget_ms: 2_000 }
    }
}

/// A tenant's guard policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Name shown in reports and audit records.
    #[serde(default = "default_name")]
    pub name: String,
    /// Only log: every action becomes `allow`, the intended one is reported as `shadow_action`.
    #[serde(default)]
    pub shadow: bool,
    /// Global thresholds.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Actions per verdict.
    #[serde(default)]
    pub actions: VerdictActions,
    /// Per-category overrides, keyed by category id (POL, VIO, …). A policy without any takes
    /// [`default_category_rules`]; one that names categories gets exactly those.
    #[serde(default = "default_category_rules")]
    pub category: BTreeMap<String, CategoryRule>,
    /// Action when PII is found in a text that is otherwise allowed.
    #[serde(default = "default_pii")]
    pub pii: Action,
    /// Session throttling.
    #[serde(default)]
    pub throttle: Throttle,
    /// Messages.
    #[serde(default)]
    pub templates: Templates,
    /// The LLM judge for the uncertain band.
    #[serde(default)]
    pub judge: JudgePolicy,
}

fn default_name() -> String {
    "default".into()
}

/// The unsafe thresholds per category that a policy without `[category]` sections uses, chosen on the
/// validation split by a grid over the targets (with the global 0.6): crime questions are
/// often legitimate ("what is the sentence for insider trading?"), so a crime request must look more
/// clearly like one to refuse.
pub fn default_category_rules() -> BTreeMap<String, CategoryRule> {
    [("CRI", 0.7)]
        .into_iter()
        .map(|(c, t)| (c.to_owned(), CategoryRule { unsafe_threshold: Some(t), action: None }))
        .collect()
}

fn default_pii() -> Action {
    Action::Mask
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            name: default_name(),
            shadow: false,
            thresholds: Thresholds::default(),
            actions: VerdictActions::default(),
            category: default_category_rules(),
            pii: Action::Mask,
            throttle: Throttle::default(),
            templates: Templates::default(),
            judge: JudgePolicy::default(),
        }
    }
}

/// The financial-compliance policy pack: stricter on crime, market abuse and risky advice.
pub const FINANCE_POLICY_TOML: &str = include_str!("../data/policy-finance.toml");

impl Policy {
    /// Parses and validates a policy; errors name the file and line.
    pub fn parse(file: &str, source: &str) -> Result<Self, GuardError> {
        let policy: Policy =
            toml::from_str(source).map_err(|e| GuardError::toml(file, source, &e))?;
        let bad = |needle: &str, message: String| GuardError::Invalid {
            file: file.to_owned(),
            line: source.find(needle).map_or(0, |at| crate::error::line_of(source, at)),
            message,
        };
        let t = policy.thresholds;
        for (key, value) in [("controversial", t.controversial), ("unsafe", t.unsafe_)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(bad(key, format!("threshold `{key}` = {value} is outside 0..=1")));
            }
        }
        let j = policy.judge;
        for (key, value) in [("low", j.low), ("high", j.high)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(bad(key, format!("judge `{key}` = {value} is outside 0..=1")));
            }
        }
        if j.low > j.high {
            return Err(bad(
                "[judge]",
                format!("judge band is empty: low {} > high {}", j.low, j.high),
            ));
        }
        for (id, rule) in &policy.category {
            if !["POL", "VIO", "SEX", "CRI", "DIS", "PRI", "RIG", "HAR"].contains(&id.as_str()) {
                return Err(bad(&format!("[category.{id}]"), format!("unknown category `{id}`")));
            }
            if let Some(v) = rule.unsafe_threshold
                && !(0.0..=1.0).contains(&v)
            {
                return Err(bad(
                    &format!("[category.{id}]"),
                    format!("category {id}: threshold {v} is outside 0..=1"),
                ));
            }
        }
        Ok(policy)
    }

    /// The financial-compliance pack.
    pub fn finance() -> Result<Self, GuardError> {
        Self::parse("policy-finance.toml", FINANCE_POLICY_TOML)
    }

    /// The unsafe threshold for a category.
    pub fn unsafe_threshold(&self, category: &str) -> f32 {
        self.category
            .get(category)
            .and_then(|r| r.unsafe_threshold)
            .unwrap_or(self.thresholds.unsafe_)
    }
}

/// A policy that can be replaced while readers hold the old one (hot reload).
pub type SharedPolicy = crate::reload::Live<Policy>;
