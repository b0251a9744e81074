//! The risk library: leaf risks under the guard's taxonomy (8 categories → the 31 risks of
//! TC260-003 → leaves), each with seed attack goals in Chinese and English.
//!
//! The leaves live in TOML files under `data/risks/` (one per category, plus the financial branch
//! `fin.toml`), compiled into the binary. Campaigns select leaves with patterns: a category (`CRI`),
//! a TC260 risk (`A3e`), an id or id prefix (`fin.laundering`), or a glob (`fin.*.spoofing`).

use std::collections::{BTreeMap, HashSet};

use guard::taxonomy::Taxonomy;
use serde::{Deserialize, Serialize};

use crate::RedteamError;
use crate::attack::{Attack, Lang};

/// The compiled-in risk files, as (path relative to the crate, text).
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    ("data/risks/pol.toml", include_str!("../data/risks/pol.toml")),
    ("data/risks/vio.toml", include_str!("../data/risks/vio.toml")),
    ("data/risks/sex.toml", include_str!("../data/risks/sex.toml")),
    ("data/risks/cri.toml", include_str!("../data/risks/cri.toml")),
    ("data/risks/dis.toml", include_str!("../data/risks/dis.toml")),
    ("data/risks/pri.toml", include_str!("../data/risks/pri.toml")),
    ("data/risks/rig.toml", include_str!("../data/risks/rig.toml")),
    ("data/risks/har.toml", include_str!("../data/risks/har.toml")),
    ("data/risks/fin.toml", include_str!("../data/risks/fin.toml")),
];

/// Fewest seed goals a leaf must have in each language.
pub const MIN_GOALS: usize = 3;

/// One leaf risk with its seed goals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leaf {
    /// Stable dotted id (`fin.laundering.structuring`); reports and stored attempts key on it.
    pub id: String,
    /// The parent TC260-003 risk (`A1h`).
    pub risk: String,
    /// Output category (`CRI`); defaults to the parent risk's primary category.
    #[serde(default)]
    pub category: String,
    /// The guard's input intent (`money_laundering`), so exported findings teach the guard's intent
    /// heads too; defaults to the file's `[intents]` entry for the longest matching id prefix.
    #[serde(default)]
    pub intent: String,
    /// Chinese name.
    pub zh: String,
    /// English name.
    pub en: String,
    /// Seed attack goals in Chinese.
    pub goals_zh: Vec<String>,
    /// Seed attack goals in English.
    pub goals_en: Vec<String>,
}

impl Leaf {
    /// The seed goals in one language.
    pub fn goals(&self, lang: Lang) -> &[String] {
        match lang {
            Lang::Zh => &self.goals_zh,
            Lang::En => &self.goals_en,
        }
    }

    /// Every seed goal as a plain attack, Chinese first.
    pub fn seeds(&self) -> Vec<Attack> {
        [Lang::Zh, Lang::En]
            .into_iter()
            .flat_map(|lang| self.goals(lang).iter().map(move |g| Attack::seed(&self.id, g, lang)))
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskFile {
    /// Intent by id prefix, for leaves that do not name their own.
    #[serde(default)]
    intents: BTreeMap<String, String>,
    #[serde(default, rename = "leaf")]
    leaves: Vec<Leaf>,
}

/// The validated tree of leaf risks.
#[derive(Debug, Clone)]
pub struct RiskLibrary {
    leaves: Vec<Leaf>,
    /// Category id → name, and TC260 risk id → (zh wording, category), from the taxonomy.
    categories: BTreeMap<String, (String, String)>,
    risks: BTreeMap<String, (String, String)>,
}

impl RiskLibrary {
    /// The compiled-in library under the guard's compiled-in taxonomy.
    pub fn builtin() -> Result<Self, RedteamError> {
        let taxonomy = Taxonomy::builtin().map_err(|e| RedteamError::Config {
            path: "guard taxonomy".into(),
            message: e.to_string(),
        })?;
        Self::from_sources(BUILTIN_FILES, &taxonomy)
    }

    /// Parses and validates risk files (path, TOML text) against a taxonomy: ids unique and
    /// well-formed, parents and categories in the taxonomy, at least [`MIN_GOALS`] distinct goals per
    /// language. Errors name the file and the leaf.
    pub fn from_sources(files: &[(&str, &str)], taxonomy: &Taxonomy) -> Result<Self, RedteamError> {
        let categories: BTreeMap<String, (String, String)> = taxonomy
            .categories
            .iter()
            .map(|c| (c.id.clone(), (c.zh.clone(), c.name.clone())))
            .collect();
        let risks: BTreeMap<String, (String, String)> = taxonomy
            .risks
            .iter()
            .map(|r| (r.id.clone(), (r.zh.clone(), r.category.clone())))
            .collect();
        let mut leaves = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (path, source) in files {
            let file: RiskFile = toml::from_str(source).map_err(|e| RedteamError::Config {
                path: (*path).to_owned(),
                message: e.to_string(),
            })?;
            for mut leaf in file.leaves {
                let id = leaf.id.clone();
                let bad = |message: String| RedteamError::Config {
                    path: (*path).to_owned(),
                    message: format!("leaf `{id}`: {message}"),
                };
                check_id(&leaf.id).map_err(&bad)?;
                if !seen.insert(id.clone()) {
                    return Err(bad("duplicate id".into()));
                }
                let Some(parent) = taxonomy.risks.iter().find(|r| r.id == leaf.risk) else {
                    return Err(bad(format!("unknown TC260 risk `{}`", leaf.risk)));
                };
                if leaf.category.is_empty() {
                    leaf.category = parent.category.clone();
                }
                if !categories.contains_key(&leaf.category) {
                    return Err(bad(format!("unknown category `{}`", leaf.category)));
                }
                if parent.category != leaf.category && !parent.also.contains(&leaf.category) {
                    return Err(bad(format!(
                        "category `{}` is not one of risk {}'s categories",
                        leaf.category, leaf.risk
                    )));
                }
                if leaf.intent.is_empty() {
                    leaf.intent = file
                        .intents
                        .iter()
                        .filter(|(prefix, _)| id_has_prefix(&id, prefix))
                        .max_by_key(|(prefix, _)| prefix.len())
                        .map(|(_, intent)| intent.clone())
                        .unwrap_or_default();
                }
                if leaf.intent.is_empty() {
                    return Err(
                        bad("no intent (name one or add its prefix to `[intents]`)".into()),
                    );
                }
                if !taxonomy.intents.iter().any(|i| i.id == leaf.intent) {
                    return Err(bad(format!("unknown intent `{}`", leaf.intent)));
                }
                if leaf.zh.trim().is_empty() || leaf.en.trim().is_empty() {
                    return Err(bad("needs both a zh and an en name".into()));
                }
                check_goals(&leaf.goals_zh, "Chinese", true).map_err(&bad)?;
                check_goals(&leaf.goals_en, "English", false).map_err(&bad)?;
                leaves.push(leaf);
            }
        }
        Ok(RiskLibrary { leaves, categories, risks })
    }

    /// Every leaf, in file order.
    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    /// The leaf with this id.
    pub fn get(&self, id: &str) -> Option<&Leaf> {
        self.leaves.iter().find(|l| l.id == id)
    }

    /// The leaves of one output category (`CRI`).
    pub fn in_category<'a>(&'a self, category: &'a str) -> impl Iterator<Item = &'a Leaf> + 'a {
        self.leaves.iter().filter(move |l| l.category == category)
    }

    /// The leaves under one TC260 risk (`A3e`).
    pub fn under_risk<'a>(&'a self, risk: &'a str) -> impl Iterator<Item = &'a Leaf> + 'a {
        self.leaves.iter().filter(move |l| l.risk == risk)
    }

    /// Chinese wording and primary category of a TC260 risk.
    pub fn risk_info(&self, risk: &str) -> Option<(&str, &str)> {
        self.risks.get(risk).map(|(zh, cat)| (zh.as_str(), cat.as_str()))
    }

    /// Chinese and English name of a category.
    pub fn category_info(&self, category: &str) -> Option<(&str, &str)> {
        self.categories.get(category).map(|(zh, en)| (zh.as_str(), en.as_str()))
    }

    /// The leaves matched by any of the patterns, in library order, each once. A pattern is `*`
    /// (everything), a category id (`POL`), a TC260 risk id (`A1h`), an id or dotted id prefix
    /// (`fin.laundering`), or a glob over ids with `*` and `?` (`fin.*`, `*.phishing_*`). A pattern
    /// that matches no leaf is an error, so a typo in a campaign file is not a silently empty run.
    pub fn select(&self, patterns: &[&str]) -> Result<Vec<&Leaf>, RedteamError> {
        let mut chosen = vec![false; self.leaves.len()];
        for pattern in patterns {
            let pattern = pattern.trim();
            let mut any = false;
            for (i, leaf) in self.leaves.iter().enumerate() {
                if self.matches(pattern, leaf) {
                    chosen[i] = true;
                    any = true;
                }
            }
            if !any {
                return Err(RedteamError::Unknown { kind: "risk pattern", id: pattern.to_owned() });
            }
        }
        Ok(self.leaves.iter().zip(chosen).filter(|(_, c)| *c).map(|(l, _)| l).collect())
    }

    /// Whether one selection pattern (see [`RiskLibrary::select`]) matches a leaf.
    pub fn matches(&self, pattern: &str, leaf: &Leaf) -> bool {
        if pattern == "*" {
            return true;
        }
        if self.categories.contains_key(pattern) {
            return leaf.category == pattern;
        }
        if self.risks.contains_key(pattern) {
            return leaf.risk == pattern;
        }
        if pattern.contains(['*', '?']) {
            return glob(pattern, &leaf.id);
        }
        id_has_prefix(&leaf.id, pattern)
    }

    /// Number of leaves per category, in taxonomy order of the category ids.
    pub fn counts_by_category(&self) -> BTreeMap<&str, usize> {
        let mut counts: BTreeMap<&str, usize> =
            self.categories.keys().map(|c| (c.as_str(), 0)).collect();
        for leaf in &self.leaves {
            *counts.entry(leaf.category.as_str()).or_default() += 1;
        }
        counts
    }
}

/// Whether `id` is `prefix` or lies under it (`fin.kyc` covers `fin.kyc.x`, not `fin.kycx`).
fn id_has_prefix(id: &str, prefix: &str) -> bool {
    id == prefix || id.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.'))
}

/// Ids are lower-case dotted paths of at least two segments (`cri.drugs.synthesis`).
fn check_id(id: &str) -> Result<(), String> {
    let segments: Vec<&str> = id.split('.').collect();
    let well_formed = segments.len() >= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if well_formed {
        Ok(())
    } else {
        Err("id must be dotted lower-case segments like `fin.laundering.structuring`".into())
    }
}

fn check_goals(goals: &[String], language: &str, chinese: bool) -> Result<(), String> {
    if goals.len() < MIN_GOALS {
        return Err(format!("only {} {language} goals (need {MIN_GOALS})", goals.len()));
    }
    let mut seen = HashSet::new();
    for goal in goals {
        if goal.trim().is_empty() {
            return Err(format!("an empty {language} goal"));
        }
        if !seen.insert(goal.as_str()) {
            return Err(format!("duplicate {language} goal `{goal}`"));
        }
        if goal.chars().any(text::normalize::is_cjk) != chinese {
            return Err(format!("{language} goal in the wrong language: `{goal}`"));
        }
    }
    Ok(())
}

/// Glob match over the whole text: `*` any run (also empty), `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_whole_ids() {
        for (pattern, text, expect) in [
            ("fin.*", "fin.laundering.structuring", true),
            ("fin.*", "cri.drugs", false),
            ("*.phishing*", "fin.data.phishing_bank", true),
            ("fin.?ata.*", "fin.data.x", true),
            ("fin.*.x", "fin.a.b.x", true),
            ("fin.*.x", "fin.a.b.y", false),
            ("*", "", true),
            ("a*b", "ab", true),
            ("a?b", "ab", false),
        ] {
            assert_eq!(glob(pattern, text), expect, "{pattern} vs {text}");
        }
    }
}
