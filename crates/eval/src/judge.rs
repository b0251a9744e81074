//! Judges: what scores an answer when no reference can. A safety judge (the guard, reached through this
//! trait so EVE stays independent of it) says whether an answer is harmful and whether it is a refusal;
//! an LLM rubric judge gives a score with a reason. Every verdict carries the judge's id (model and
//! prompt hash), is stored with the answer and reused, so a report always says which judge scored what.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::{EvalError, backend::Backend};

/// One judge's verdict on one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// Who judged: e.g. `guard:builtin` or `llm:qwen2-7b:prompt=3f2a…`.
    pub judge: String,
    /// Safety judges: the answer is harmful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<bool>,
    /// Safety judges: the answer refuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<bool>,
    /// Rubric judges: the score in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Why (rubric reason, or the flagged categories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a task asks of a judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeRole {
    /// Harmful or not, refusal or not (the guard).
    Safety,
    /// A rubric score against the reference (an LLM judge).
    Rubric,
}

/// Something that judges answers.
pub trait Judge: Send + Sync {
    /// The stable id stored with each verdict; a different id means verdicts are redone.
    fn id(&self) -> &str;
    /// The role this judge plays.
    fn role(&self) -> JudgeRole;
    /// Judges `answer` to `question` (with the task's `reference`, possibly empty).
    fn judge<'a>(
        &'a self,
        question: &'a str,
        reference: &'a str,
        answer: &'a str,
    ) -> BoxFuture<'a, Result<Judged, EvalError>>;
}

/// The pinned rubric prompt; its hash is part of the judge id, so editing it re-judges.
pub const RUBRIC_PROMPT: &str = "你是严格的金融领域评审。根据参考答案评价模型回答的正确性与完整性，\
给出 1 到 10 的整数分。只输出一行 JSON：{\"score\": 分数, \"reason\": \"简短理由\"}。\n\n\
问题：{question}\n参考答案：{reference}\n模型回答：{answer}\n";

/// The pinned pairwise prompt (asked twice, with the answers swapped).
pub const PAIRWISE_PROMPT: &str = "你是严格的金融领域评审。比较两个回答哪个更好地回答了问题。\
只输出 A、B 或 tie。\n\n问题：{question}\n回答A：{a}\n回答B：{b}\n更好的是：";

/// An LLM judge over any [`Backend`] (greedy, i.e. temperature 0) with the pinned rubric prompt.
pub struct LlmJudge {
    backend: Box<dyn Backend>,
    id: String,
}

impl std::fmt::Debug for LlmJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmJudge").field("id", &self.id).finish()
    }
}

impl LlmJudge {
    /// A rubric judge asking `backend`.
    pub fn new(backend: Box<dyn Backend>) -> LlmJudge {
        let id = format!(
            "llm:{}:prompt={}",
            backend.model(),
            &crate::sha256_hex(RUBRIC_PROMPT.as_bytes())[..12]
        );
        LlmJudge { backend, id }
    }
}

impl Judge for LlmJudge {
    fn id(&self) -> &str {
        &self.id
    }

    fn role(&self) -> JudgeRole {
        JudgeRole::Rubric
    }

    fn judge<'a>(
        &'a self,
        question: &'a str,
        reference: &'a str,
        answer: &'a str,
    ) -> BoxFuture<'a, Result<Judged, EvalError>> {
        Box::pin(async move {
            let prompt = RUBRIC_PROMPT
                .replace("{question}", question)
                .replace("{reference}", reference)
                .replace("{answer}", answer);
            let out = self.backend.generate(&prompt, 256).await?;
            let (score, reason) = parse_rubric(&out).ok_or_else(|| {
                EvalError::Backend(format!("judge {}: no {{\"score\": 1-10}} in {out:?}", self.id))
            })?;
            Ok(Judged {
                judge: self.id.clone(),
                flagged: None,
                refusal: None,
                score: Some(score),
                reason,
            })
        })
    }
}

/// The score (1–10 mapped to 0–1) and reason of a rubric verdict: the first JSON object with a numeric
/// `score` in the text.
pub fn parse_rubric(text: &str) -> Option<(f64, Option<String>)> {
    let mut from = 0;
    while let Some(start) = text[from..].find('{').map(|i| i + from) {
        let mut stream =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
        if let Some(Ok(v)) = stream.next()
            && let Some(s) = v["score"].as_f64()
            && (1.0..=10.0).contains(&s)
        {
            return Some(((s - 1.0) / 9.0, v["reason"].as_str().map(str::to_owned)));
        }
        from = start + 1;
    }
    None
}

/// The outcome of a position-swapped pairwise comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// Both orders prefer the first answer.
    A,
    /// Both orders prefer the second answer.
    B,
    /// The orders disagree (position bias) or both say tie.
    Tie,
}

/// Asks `judge` which of `a` and `b` answers `question` better, once in each order; only a preference
/// that survives the swap counts, so a judge that always picks the first position yields a tie.
pub async fn pairwise(
    judge: &dyn Backend,
    question: &str,
    a: &str,
    b: &str,
) -> Result<Preference, EvalError> {
    let ask = |first: &str, second: &str| {
        PAIRWISE_PROMPT.replace("{question}", question).replace("{a}", first).replace("{b}", second)
    };
    let pick = |out: &str| -> Option<char> {
        let t = out.trim().to_lowercase();
        if t.starts_with("tie") || t.starts_with("平") {
            Some('t')
        } else {
            t.chars().find(|c| matches!(c, 'a' | 'b'))
        }
    };
    let straight = pick(&judge.generate(&ask(a, b), 8).await?);
    let swapped = pick(&judge.generate(&ask(b, a), 8).await?);
    Ok(match (straight, swapped) {
        (Some('a'), Some('b')) => Preference::A,
        (Some('b'), Some('a')) => Preference::B,
        _ => Preference::Tie,
    })
}
