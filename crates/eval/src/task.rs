//! Task specs (TOML): which data, which prompt, how the answer is scored; and the sample every loader yields.
//!
//! A task's version is a hash of its spec, its template and its data, so a cached result is reused only
//! for the exact same question asked the same way.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// One evaluation item, whatever file it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Stable id within the task (the file's id column, or the row number).
    pub id: String,
    /// The question or instruction.
    pub question: String,
    /// Optional passage the question refers to (Fin-Eva's context column).
    pub context: Option<String>,
    /// Options as (label, text), e.g. ("A", "货币市场"); empty for open questions.
    pub choices: Vec<(String, String)>,
    /// The reference: option letters (`B`, `ABD`) for choice tasks, the reference text otherwise.
    pub target: String,
    /// Every other field of the row, for templates.
    pub fields: BTreeMap<String, String>,
    /// Images the question shows: file paths (resolved against the data file) or `data:` URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// How a task is answered and scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Exactly one option is right.
    SingleChoice,
    /// Any non-empty set of options (`ABD`); scored by set match with partial credit.
    MultiChoice,
    /// Free text or a number, scored by text metrics.
    Open,
}

/// Which scoring paths to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// Log-likelihood of each option after the prompt.
    Loglik,
    /// Generate, then extract the answer.
    Generate,
    /// Both, recorded side by side.
    Both,
}

impl Scoring {
    /// Whether the log-likelihood path runs.
    pub fn loglik(self) -> bool {
        matches!(self, Scoring::Loglik | Scoring::Both)
    }
    /// Whether the generation path runs.
    pub fn generate(self) -> bool {
        matches!(self, Scoring::Generate | Scoring::Both)
    }
}

/// Data file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Comma-separated with a header (FinEval, FinanceIQ, CMMLU, Fin-Eva).
    Csv,
    /// One JSON array of objects (CFLUE, DISC-FinLLM).
    Json,
    /// One JSON object per line, optionally in chat `messages` form.
    Jsonl,
    /// Tab-separated with a header, like CSV; an `image`/`image_path` column makes samples multimodal.
    Tsv,
    /// Arrow IPC stream or file (Hugging Face `save_to_disk`, e.g. CFBenchmark); rows as JSON objects.
    Arrow,
}

/// Where a task's rows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Data file, relative to the data root.
    pub path: PathBuf,
    /// File format; guessed from the extension when absent.
    #[serde(default)]
    pub format: Option<Format>,
    /// Split name, for the record (`val`, `dev`, `test`).
    #[serde(default = "default_split")]
    pub split: String,
    /// File with few-shot examples (same format), relative to the data root.
    #[serde(default)]
    pub dev_path: Option<PathBuf>,
    /// Keep only rows whose field `.0` equals `.1` (e.g. CFLUE's `task = "多项选择题"`).
    #[serde(default)]
    pub filter: Option<(String, String)>,
    /// Options given to rows that have none, with the answer text mapped to its letter (Fin-Eva's
    /// 是/否 sub-tasks: `["是", "否"]`).
    #[serde(default)]
    pub fixed_choices: Option<Vec<String>>,
}

fn default_split() -> String {
    "test".to_owned()
}

/// Few-shot settings: `k` examples drawn from the dev file with `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShot {
    /// Number of examples.
    pub k: usize,
    /// Seed of the draw.
    #[serde(default)]
    pub seed: u64,
}

/// A task spec as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Unique task name, e.g. `fineval/accounting`.
    pub name: String,
    /// Ability or domain the task rolls up into, e.g. `金融知识`.
    #[serde(default)]
    pub group: Option<String>,
    /// The data.
    pub dataset: Dataset,
    /// Kind of answer.
    pub kind: TaskKind,
    /// Instruction put before the few-shot examples and the question.
    #[serde(default)]
    pub instruction: Option<String>,
    /// Jinja template of one item (variables: question, context, choices[{label,text}], fields).
    #[serde(default)]
    pub template: Option<String>,
    /// What each option's log-likelihood is measured on: its `letter` or its `text`.
    #[serde(default = "default_continuation")]
    pub continuation: String,
    /// Few-shot examples.
    #[serde(default)]
    pub fewshot: Option<FewShot>,
    /// Metric names reported for the task; the first is the headline score.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Extractor name for the generation path.
    #[serde(default)]
    pub extractor: Option<String>,
    /// Maximum tokens generated on the generation path.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// The judge the task's metrics need (`safety`: the guard; `rubric`: an LLM judge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<crate::judge::JudgeRole>,
}

fn default_continuation() -> String {
    "letter".to_owned()
}
fn default_max_tokens() -> u32 {
    64
}

/// The default item template: context, question, lettered options, then the answer cue.
pub const DEFAULT_TEMPLATE: &str = "{% if context %}{{ context }}\n{% endif %}{{ question }}\n\
{% for c in choices %}{{ c.label }}. {{ c.text }}\n{% endfor %}答案：";

impl TaskSpec {
    /// Parses a TOML spec; `path` only names the source in errors.
    pub fn from_toml(text: &str, path: &str) -> Result<TaskSpec, EvalError> {
        let spec: TaskSpec = toml::from_str(text)
            .map_err(|e| EvalError::Spec { path: path.to_owned(), message: e.to_string() })?;
        spec.validate(path)?;
        Ok(spec)
    }

    /// Reads and parses a TOML spec file.
    pub fn from_file(path: &Path) -> Result<TaskSpec, EvalError> {
        TaskSpec::from_toml(&crate::read_file(path)?, &path.display().to_string())
    }

    fn validate(&self, path: &str) -> Result<(), EvalError> {
        let bad = |message: String| Err(EvalError::Spec { path: path.to_owned(), message });
        if !matches!(self.continuation.as_str(), "letter" | "text") {
            return bad(format!(
                "continuation must be letter or text, not {:?}",
                self.continuation
            ));
        }
        for m in &self.metrics {
            if !crate::metrics::NAMES.contains(&m.as_str()) {
                return bad(format!(
                    "unknown metric {m:?}; known: {}",
                    crate::metrics::NAMES.join(", ")
                ));
            }
        }
        if let Some(e) = &self.extractor
            && crate::extract::Extractor::from_name(e).is_none()
        {
            return bad(format!(
                "unknown extractor {e:?}; known: {}",
                crate::extract::NAMES.join(", ")
            ));
        }
        Ok(())
    }

    /// The extractor for the generation path: the spec's, or the kind's default.
    pub fn extractor(&self) -> crate::extract::Extractor {
        use crate::extract::Extractor;
        self.extractor.as_deref().and_then(Extractor::from_name).unwrap_or(match self.kind {
            TaskKind::SingleChoice => Extractor::ChoiceFirst,
            TaskKind::MultiChoice => Extractor::MultiChoice,
            TaskKind::Open => Extractor::Trimmed,
        })
    }

    /// The metrics reported: the spec's, or the kind's defaults.
    pub fn metric_names(&self) -> Vec<String> {
        if !self.metrics.is_empty() {
            return self.metrics.clone();
        }
        let names: &[&str] = match self.kind {
            TaskKind::SingleChoice => &["acc", "acc_norm", "gen_acc"],
            TaskKind::MultiChoice => &["set_exact", "set_partial"],
            TaskKind::Open => &["quasi_exact", "char_f1", "rouge_l"],
        };
        names.iter().map(|s| (*s).to_owned()).collect()
    }
}

/// A spec with its rows loaded and its prompt parts ready.
#[derive(Debug, Clone)]
pub struct Task {
    /// The spec.
    pub spec: TaskSpec,
    /// The rows to score.
    pub samples: Vec<Sample>,
    /// Few-shot examples drawn from the dev file.
    pub shots: Vec<Sample>,
    /// Hash of spec, template and data.
    pub version: String,
}

impl Task {
    /// Loads the spec's data under `root`, draws the few-shot examples and computes the version.
    pub fn load(spec: TaskSpec, root: &Path) -> Result<Task, EvalError> {
        let path = root.join(&spec.dataset.path);
        let data = std::fs::read(&path)
            .map_err(|source| EvalError::Io { path: path.display().to_string(), error: source })?;
        let mut samples = crate::load::load(&path, spec.dataset.format)?;
        if let Some((field, value)) = &spec.dataset.filter {
            samples.retain(|s| s.fields.get(field) == Some(value));
        }
        if let Some(texts) = &spec.dataset.fixed_choices {
            for s in samples.iter_mut().filter(|s| s.choices.is_empty()) {
                s.choices =
                    texts.iter().zip('A'..='Z').map(|(t, l)| (l.to_string(), t.clone())).collect();
                let Some((label, _)) = s.choices.iter().find(|(_, t)| *t == s.target) else {
                    return Err(EvalError::Data {
                        file: path.display().to_string(),
                        row: s.id.parse::<usize>().map_or(0, |i| i + 2),
                        column: Some("answer".into()),
                        message: format!(
                            "answer {:?} is none of {texts:?} (sample {})",
                            s.target, s.id
                        ),
                    });
                };
                s.target = label.clone();
            }
        }
        if spec.kind != TaskKind::Open
            && let Some(s) = samples.iter().find(|s| s.target.is_empty())
        {
            return Err(EvalError::Data {
                file: path.display().to_string(),
                row: 0,
                column: Some("answer".into()),
                message: format!(
                    "sample {} has no answer, which a {:?} task needs",
                    s.id, spec.kind
                ),
            });
        }
        let mut shots = Vec::new();
        let mut dev_bytes = Vec::new();
        if let (Some(fs), Some(dev)) = (spec.fewshot, &spec.dataset.dev_path) {
            let dev_path = root.join(dev);
            dev_bytes = std::fs::read(&dev_path).map_err(|source| EvalError::Io {
                path: dev_path.display().to_string(),
                error: source,
            })?;
            let pool = crate::load::load(&dev_path, spec.dataset.format)?;
            shots = draw(&pool, fs.k, fs.seed);
        }
        let spec_text = toml::to_string(&spec)
            .map_err(|e| EvalError::Spec { path: spec.name.clone(), message: e.to_string() })?;
        let mut material = spec_text.into_bytes();
        material.extend_from_slice(spec.template.as_deref().unwrap_or(DEFAULT_TEMPLATE).as_bytes());
        material.extend_from_slice(crate::sha256_hex(&data).as_bytes());
        material.extend_from_slice(crate::sha256_hex(&dev_bytes).as_bytes());
        let version = crate::sha256_hex(&material)[..16].to_owned();
        Ok(Task { spec, samples, shots, version })
    }

    /// The full prompt for `sample`: instruction, few-shot examples with answers, the item.
    pub fn prompt(&self, sample: &Sample) -> Result<String, EvalError> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(false);
        let template = self.spec.template.as_deref().unwrap_or(DEFAULT_TEMPLATE);
        let err = |e: minijinja::Error| EvalError::Template {
            task: self.spec.name.clone(),
            message: format!("{e:#}"),
        };
        env.add_template("item", template).map_err(err)?;
        let item = env.get_template("item").map_err(err)?;
        let render = |s: &Sample| {
            let choices: Vec<_> = s
                .choices
                .iter()
                .map(|(label, text)| minijinja::context! { label => label, text => text })
                .collect();
            item.render(minijinja::context! {
                question => s.question, context => s.context, choices => choices, fields => s.fields,
            })
            .map_err(err)
        };
        let mut out = String::new();
        if let Some(instruction) = &self.spec.instruction {
            out.push_str(instruction);
            out.push_str("\n\n");
        }
        for shot in &self.shots {
            out.push_str(&render(shot)?);
            out.push_str(&shot.target);
            out.push_str("\n\n");
        }
        out.push_str(&render(sample)?);
        Ok(out)
    }

    /// What the log-likelihood path scores for option `i`: its letter or its text.
    pub fn continuation(&self, sample: &Sample, i: usize) -> String {
        let (label, text) = &sample.choices[i];
        if self.spec.continuation == "text" { text.clone() } else { label.clone() }
    }
}

/// `k` distinct rows of `pool`, drawn with `seed` (the same seed always gives the same rows).
fn draw(pool: &[Sample], k: usize, seed: u64) -> Vec<Sample> {
    use rand::{SeedableRng, seq::SliceRandom};
    let mut idx: Vec<usize> = (0..pool.len()).collect();
    idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    idx.into_iter().take(k).map(|i| pool[i].clone()).collect()
}
