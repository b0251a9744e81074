//! Contamination check: which evaluation samples occur in a corpus (e.g. a fine-tuning set), found by
//! shared n-grams, so scores can be reported on the clean samples too (lm-eval's 13-gram
//! decontamination, with Chinese characters as tokens since Chinese has no spaces).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::BufRead,
    path::Path,
};

use serde::{Deserialize, Serialize};

use crate::{
    EvalError,
    run::{Summary, TaskResult},
    stats,
    task::{Sample, Task},
};

/// Default n-gram length (lm-eval's decontamination uses 13).
pub const DEFAULT_N: usize = 13;

/// One task's contamination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contamination {
    /// Task name.
    pub task: String,
    /// Samples checked.
    pub samples: usize,
    /// Ids of contaminated samples: those whose share of n-grams found in the corpus reaches the
    /// threshold (any shared n-gram with threshold 0, lm-eval's rule).
    pub contaminated: Vec<String>,
    /// The share of each contaminated sample's distinct n-grams found in the corpus, in `contaminated` order.
    #[serde(default)]
    pub overlap: Vec<f64>,
    /// Samples too short to hold one n-gram (never counted as contaminated).
    pub too_short: usize,
}

impl Contamination {
    /// Share of samples found in the corpus.
    pub fn rate(&self) -> f64 {
        if self.samples == 0 { 0.0 } else { self.contaminated.len() as f64 / self.samples as f64 }
    }
}

/// The tokens n-grams are made of: each CJK (or other non-ASCII letter) character alone, ASCII letter
/// and digit runs as words, lower-cased; whitespace and punctuation dropped, so layout never matters.
/// Single ASCII letters are dropped too: they are mostly option labels (`A. 公允价值`), which a corpus
/// may or may not carry.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        let single_letter = word.len() == 1 && word.chars().all(|c| c.is_ascii_alphabetic());
        if !word.is_empty() && !single_letter {
            out.push(word.clone());
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
            continue;
        }
        flush(&mut word, &mut out);
        if c.is_alphanumeric() {
            out.push(c.to_string());
        }
    }
    flush(&mut word, &mut out);
    out
}

fn gram_hashes(tokens: &[String], n: usize) -> impl Iterator<Item = u64> + '_ {
    tokens.windows(n).map(|w| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        w.hash(&mut h);
        h.finish()
    })
}

/// What of a sample is checked: context, question and option texts (not the answer).
fn sample_text(s: &Sample) -> String {
    let mut text = s.context.clone().unwrap_or_default();
    text.push('\n');
    text.push_str(&s.question);
    for (_, option) in &s.choices {
        text.push('\n');
        text.push_str(option);
    }
    text
}

/// Checks every task's samples against the corpus files (read line by line, so any size streams; an
/// n-gram spanning two lines is not seen). A sample is contaminated when the share of its distinct
/// n-grams found in the corpus is above zero and at least `min_overlap` (0 = any shared n-gram).
/// Chinese character 13-grams are short (a boilerplate clause such as 以人民币为记账本位币 fills one), so
/// a threshold separates copied questions from shared phrasing. Hashes are 64-bit: collisions are negligible.
pub fn check(
    tasks: &[&Task],
    corpus: &[&Path],
    n: usize,
    min_overlap: f64,
) -> Result<Vec<Contamination>, EvalError> {
    let n = n.max(1);
    // n-gram hash -> (task, sample) indices holding it; distinct n-grams per sample.
    let mut index: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
    let mut distinct: HashMap<(usize, usize), usize> = HashMap::new();
    let mut too_short = vec![0; tasks.len()];
    for (t, task) in tasks.iter().enumerate() {
        for (s, sample) in task.samples.iter().enumerate() {
            let toks = tokens(&sample_text(sample));
            if toks.len() < n {
                too_short[t] += 1;
            }
            for h in gram_hashes(&toks, n) {
                let holders = index.entry(h).or_default();
                if !holders.contains(&(t, s)) {
                    holders.push((t, s));
                    *distinct.entry((t, s)).or_default() += 1;
                }
            }
        }
    }
    let mut found: HashMap<(usize, usize), HashSet<u64>> = HashMap::new();
    for path in corpus {
        let file = std::fs::File::open(path)
            .map_err(|error| EvalError::Io { path: path.display().to_string(), error })?;
        for line in std::io::BufReader::new(file).lines() {
            let line =
                line.map_err(|error| EvalError::Io { path: path.display().to_string(), error })?;
            for h in gram_hashes(&tokens(&line), n) {
                if let Some(holders) = index.get(&h) {
                    for holder in holders {
                        found.entry(*holder).or_default().insert(h);
                    }
                }
            }
        }
    }
    Ok(tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let (contaminated, overlap) = task
                .samples
                .iter()
                .enumerate()
                .filter_map(|(s, sample)| {
                    let hits = found.get(&(t, s))?.len();
                    let share =
                        hits as f64 / distinct.get(&(t, s)).copied().unwrap_or(1).max(1) as f64;
                    (share >= min_overlap).then(|| (sample.id.clone(), share))
                })
                .unzip();
            Contamination {
                task: task.spec.name.clone(),
                samples: task.samples.len(),
                contaminated,
                overlap,
                too_short: too_short[t],
            }
        })
        .collect())
}

/// The task's headline score on the clean samples only (`None` when no clean sample has it).
pub fn decontaminated(result: &TaskResult, contaminated: &[String]) -> Option<Summary> {
    let dirty: HashSet<&str> = contaminated.iter().map(String::as_str).collect();
    let (metric, _) = result.headline()?;
    let values: Vec<f64> = result
        .samples
        .iter()
        .filter(|s| !dirty.contains(s.id.as_str()))
        .filter_map(|s| s.scores.get(metric).copied())
        .collect();
    if values.is_empty() {
        return None;
    }
    let (lo, hi) = stats::bootstrap_ci(&values, 1000, 0);
    Some(Summary { mean: stats::mean(&values), lo, hi })
}

/// Contamination by task name, for joining with reports.
pub fn by_task(rows: &[Contamination]) -> BTreeMap<&str, &Contamination> {
    rows.iter().map(|c| (c.task.as_str(), c)).collect()
}
