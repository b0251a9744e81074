//! Metrics: per-sample scores in [0, 1] for choice accuracy, set match, text overlap (F1, character
//! ROUGE-L for Chinese, BLEU) and numeric match; a task's metric is the mean over its samples.

use crate::{extract, run::SampleResult};

/// Every metric name a task spec may list.
pub const NAMES: &[&str] = &[
    "acc",
    "acc_norm",
    "gen_acc",
    "exact",
    "quasi_exact",
    "set_exact",
    "set_partial",
    "token_f1",
    "char_f1",
    "rouge_l",
    "bleu",
    "numeric",
    "refusal",
    "answered",
    "harmful_answer",
    "judge_score",
];

/// Relative tolerance of `numeric` (1%), with an absolute floor for answers near zero.
pub const NUMERIC_REL_TOL: f64 = 0.01;
const NUMERIC_ABS_TOL: f64 = 1e-6;

/// The score of metric `name` on one result; `None` when the path it needs did not run (e.g. `acc`
/// without log-likelihoods).
pub fn score(name: &str, r: &SampleResult) -> Option<f64> {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    let generated = || r.generate.as_ref();
    // An unextractable answer scores zero: it is counted, never dropped.
    let extracted = || generated().map(|g| g.extracted.clone().unwrap_or_default());
    Some(match name {
        "acc" => b(r.loglik.as_ref()?.pred == r.target),
        "acc_norm" => b(r.loglik.as_ref()?.pred_norm == r.target),
        "gen_acc" | "set_exact" => b(extracted()? == sorted(&r.target)),
        "set_partial" => set_partial(&extracted()?, &r.target),
        "exact" => b(extracted()?.trim() == r.target.trim()),
        "quasi_exact" => b(normalize(&extracted()?) == normalize(&r.target)),
        "token_f1" => f1(&tokens(&extracted()?), &tokens(&r.target)),
        "char_f1" => f1(&chars(&extracted()?), &chars(&r.target)),
        "rouge_l" => rouge_l(&chars(&extracted()?), &chars(&r.target)),
        "bleu" => bleu(&tokens(&extracted()?), &tokens(&r.target)),
        "numeric" => {
            let pred = extract::last_number(&extracted()?);
            let gold = extract::last_number(&r.target);
            match (pred, gold) {
                (Some(p), Some(g)) => b(numeric_match(p, g)),
                _ => 0.0,
            }
        }
        // Judge verdicts: absent when the task had no judge.
        "refusal" => b(r.judged.as_ref()?.refusal?),
        "answered" => b(!r.judged.as_ref()?.refusal?),
        "harmful_answer" => b(r.judged.as_ref()?.flagged?),
        "judge_score" => r.judged.as_ref()?.score?,
        _ => return None,
    })
}

fn sorted(letters: &str) -> String {
    let mut v: Vec<char> = letters.trim().chars().collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().collect()
}

/// Whether `pred` is within the tolerance of `gold`.
pub fn numeric_match(pred: f64, gold: f64) -> bool {
    (pred - gold).abs() <= (gold.abs() * NUMERIC_REL_TOL).max(NUMERIC_ABS_TOL)
}

/// Set match with partial credit: all right = 1; a strict subset with nothing wrong = |pred|/|gold|;
/// any wrong option (or nothing) = 0 (the usual rule of Chinese multi-select exams).
pub fn set_partial(pred: &str, gold: &str) -> f64 {
    let (p, g) = (sorted(pred), sorted(gold));
    if p.is_empty() || p.chars().any(|c| !g.contains(c)) {
        return 0.0;
    }
    p.chars().count() as f64 / g.chars().count() as f64
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() || "，。！？；：、“”‘’（）《》【】—…·「」".contains(c)
}

/// Lowercased, without whitespace, punctuation or English articles.
pub fn normalize(text: &str) -> String {
    let lower = text.to_lowercase();
    let words: Vec<&str> =
        lower.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).collect();
    words.concat().chars().filter(|c| !is_punct(*c)).collect()
}

/// Tokens: ASCII words and numbers as one token each, every other non-space, non-punctuation character
/// (Chinese) as its own token.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() || (c == '.' && !word.is_empty()) {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() && !is_punct(c) {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn chars(text: &str) -> Vec<String> {
    text.chars().filter(|c| !c.is_whitespace() && !is_punct(*c)).map(String::from).collect()
}

/// F1 of the multiset overlap of two token lists.
pub fn f1(pred: &[String], gold: &[String]) -> f64 {
    if pred.is_empty() || gold.is_empty() {
        return if pred.is_empty() && gold.is_empty() { 1.0 } else { 0.0 };
    }
    let mut remaining = gold.to_vec();
    let mut common = 0usize;
    for t in pred {
        if let Some(i) = remaining.iter().position(|g| g == t) {
            remaining.swap_remove(i);
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let p = common as f64 / pred.len() as f64;
    let r = common as f64 / gold.len() as f64;
    2.0 * p * r / (p + r)
}

/// ROUGE-L F1 from the longest common subsequence (on characters for Chinese).
pub fn rouge_l(pred: &[String], gold: &[String]) -> f64 {
    if pred.is_empty() || gold.is_empty() {
        return 0.0;
    }
    let mut row = vec![0usize; gold.len() + 1];
    for p in pred {
        let mut diag = 0;
        for (j, g) in gold.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if p == g { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    let lcs = row[gold.len()] as f64;
    if lcs == 0.0 {
        return 0.0;
    }
    let (p, r) = (lcs / pred.len() as f64, lcs / gold.len() as f64);
    2.0 * p * r / (p + r)
}

/// Sentence BLEU-4 with add-one smoothing of the 2- to 4-gram precisions and the brevity penalty.
pub fn bleu(pred: &[String], gold: &[String]) -> f64 {
    if pred.is_empty() || gold.is_empty() {
        return 0.0;
    }
    let mut log_sum = 0.0;
    for n in 1..=4usize {
        let grams =
            |t: &[String]| -> Vec<Vec<String>> { t.windows(n).map(<[String]>::to_vec).collect() };
        let (p, mut g) = (grams(pred), grams(gold));
        let total = p.len();
        let mut hit = 0usize;
        for gram in &p {
            if let Some(i) = g.iter().position(|x| x == gram) {
                g.swap_remove(i);
                hit += 1;
            }
        }
        let precision = if n == 1 {
            if hit == 0 {
                return 0.0;
            }
            hit as f64 / total as f64
        } else {
            (hit as f64 + 1.0) / (total as f64 + 1.0)
        };
        log_sum += precision.ln() / 4.0;
    }
    let bp = if pred.len() >= gold.len() {
        1.0
    } else {
        (1.0 - gold.len() as f64 / pred.len() as f64).exp()
    };
    bp * log_sum.exp()
}
