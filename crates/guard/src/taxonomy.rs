//! The risk taxonomy (`data/taxonomy.toml`): 8 output categories, the 31 risks of TC260-003 Appendix A,
//! input intents and attack techniques. Compiled in, parsed and validated once at start-up; the red
//! team reads the same file.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::GuardError;

/// The taxonomy file's text, as compiled into the binary.
pub const TAXONOMY_TOML: &str = include_str!("../data/taxonomy.toml");

/// One output category (POL, VIO, …).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Category {
    /// Three-letter id.
    pub id: String,
    /// English name.
    pub name: String,
    /// Chinese name.
    pub zh: String,
}

/// One risk of TC260-003 Appendix A.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Risk {
    /// Appendix A number, e.g. `A2e`.
    pub id: String,
    /// The standard's wording.
    pub zh: String,
    /// Primary output category.
    pub category: String,
    /// Further categories the risk touches.
    #[serde(default)]
    pub also: Vec<String>,
}

/// One input intent.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Intent {
    /// Stable snake_case id.
    pub id: String,
    /// Chinese description.
    pub zh: String,
    /// The output category it leads to.
    pub category: String,
    /// TC260 risks it realises.
    pub risks: Vec<String>,
}

/// One attack technique (orthogonal to intents).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Technique {
    /// Stable snake_case id.
    pub id: String,
    /// Chinese description.
    pub zh: String,
}

/// The whole taxonomy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    /// File format version.
    pub version: u32,
    /// The 8 output categories.
    #[serde(rename = "category")]
    pub categories: Vec<Category>,
    /// The 31 TC260-003 risks.
    #[serde(rename = "risk")]
    pub risks: Vec<Risk>,
    /// Input intents.
    #[serde(rename = "intent")]
    pub intents: Vec<Intent>,
    /// Attack techniques.
    #[serde(rename = "technique")]
    pub techniques: Vec<Technique>,
}

impl Taxonomy {
    /// The compiled-in taxonomy, validated.
    pub fn builtin() -> Result<Self, GuardError> {
        Self::parse("taxonomy.toml", TAXONOMY_TOML)
    }

    /// Parses and validates a taxonomy file.
    pub fn parse(file: &str, source: &str) -> Result<Self, GuardError> {
        let taxonomy: Taxonomy =
            toml::from_str(source).map_err(|e| GuardError::toml(file, source, &e))?;
        taxonomy.validate(file, source)?;
        Ok(taxonomy)
    }

    fn validate(&self, file: &str, source: &str) -> Result<(), GuardError> {
        let invalid = |id: &str, message: String| GuardError::Invalid {
            file: file.to_owned(),
            line: source
                .find(&format!("\"{id}\""))
                .map_or(0, |at| crate::error::line_of(source, at)),
            message,
        };
        let categories: HashSet<&str> = self.categories.iter().map(|c| c.id.as_str()).collect();
        let mut seen = HashSet::new();
        let ids = self.categories.iter().map(|c| &c.id).chain(self.risks.iter().map(|r| &r.id));
        for id in ids
            .chain(self.intents.iter().map(|i| &i.id))
            .chain(self.techniques.iter().map(|t| &t.id))
        {
            if !seen.insert(id.as_str()) {
                return Err(invalid(id, format!("duplicate id `{id}`")));
            }
        }
        let risks: HashSet<&str> = self.risks.iter().map(|r| r.id.as_str()).collect();
        for risk in &self.risks {
            for cat in std::iter::once(&risk.category).chain(&risk.also) {
                if !categories.contains(cat.as_str()) {
                    return Err(invalid(
                        &risk.id,
                        format!("risk `{}` maps to unknown category `{cat}`", risk.id),
                    ));
                }
            }
        }
        for intent in &self.intents {
            if !categories.contains(intent.category.as_str()) {
                return Err(invalid(
                    &intent.id,
                    format!("intent `{}` has unknown category", intent.id),
                ));
            }
            if let Some(r) = intent.risks.iter().find(|r| !risks.contains(r.as_str())) {
                return Err(invalid(
                    &intent.id,
                    format!("intent `{}` names unknown risk `{r}`", intent.id),
                ));
            }
        }
        Ok(())
    }

    /// Index of a category id.
    pub fn category_index(&self, id: &str) -> Option<usize> {
        self.categories.iter().position(|c| c.id == id)
    }

    /// Index of an intent id.
    pub fn intent_index(&self, id: &str) -> Option<usize> {
        self.intents.iter().position(|i| i.id == id)
    }

    /// Index of a technique id.
    pub fn technique_index(&self, id: &str) -> Option<usize> {
        self.techniques.iter().position(|t| t.id == id)
    }

    /// The category an intent leads to.
    pub fn category_of_intent(&self, intent: &str) -> Option<&str> {
        self.intents.iter().find(|i| i.id == intent).map(|i| i.category.as_str())
    }
}
