//! The guard itself: normalise, decode, match the lexicon, score with the model, find PII, then reach a
//! verdict and apply the policy. [`Guard::check_input`] runs before the model, [`Guard::check_output`]
//! after it; both return a [`Judgement`] that serialises as the moderation result.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use serde::Serialize;

use crate::{
    GuardError, Judge, Policy, Taxonomy,
    lexicon::{Hit, Label, Lexicon, SharedLexicon, Strength},
    model::{self, HEAD_RISK, HEAD_UNSAFE, Model},
    policy::Action,
};

/// The three verdicts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to act on.
    Safe,
    /// A sensitive topic or biased premise: answer with care and correction.
    Controversial,
    /// Must be refused or rewritten.
    Unsafe,
}

impl Verdict {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::Controversial => "controversial",
            Verdict::Unsafe => "unsafe",
        }
    }
}

/// Whether a text is a request (before the model) or an answer (after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A user message, document or tool output going to the model.
    Input,
    /// A model answer going to the user.
    Output,
}

/// A highlighted part of the judged text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    /// `lexicon` (offsets in the normalised text) or `pii` (offsets in the original text).
    pub source: &'static str,
    /// Intent, technique or PII kind.
    pub label: String,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

/// Calibrated scores behind a judgement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    /// Probability the text is controversial or unsafe.
    pub risk: f32,
    /// Probability the text is unsafe: P(risky) × P(unsafe | risky).
    #[serde(rename = "unsafe")]
    pub unsafe_: f32,
    /// Per output category.
    pub categories: BTreeMap<String, f32>,
    /// Per input intent.
    pub intents: BTreeMap<String, f32>,
}

/// The guard's answer for one text.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    /// safe, controversial or unsafe.
    pub verdict: Verdict,
    /// Output categories behind the verdict (empty when safe).
    pub categories: Vec<String>,
    /// Input intents behind the verdict (empty when safe).
    pub intents: Vec<String>,
    /// Attack techniques seen, whatever the verdict.
    pub techniques: Vec<String>,
    /// Lexicon and PII spans.
    pub spans: Vec<Span>,
    /// Calibrated scores.
    pub scores: Scores,
    /// What the policy does with it.
    pub action: Action,
    /// In shadow mode, the action that would have been taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_action: Option<Action>,
    /// For answers: whether the answer is a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<bool>,
    /// Encodings undone to find a risky payload (outermost first), if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub decoded: Vec<text::Encoding>,
    /// The LLM judge's outcome, when the classifier was unsure and a judge was consulted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<crate::judge::JudgeOutcome>,
}

impl Judgement {
    /// `flagged` in the OpenAI moderation shape: true exactly when the verdict is unsafe.
    pub fn flagged(&self) -> bool {
        self.verdict == Verdict::Unsafe
    }
}

/// Scores of one piece of text before the verdict.
#[derive(Debug, Clone)]
struct Raw {
    probs: Vec<f32>,
    hits: Vec<Hit>,
}

/// Longest text scored as one piece; longer texts are also scored in windows.
const WINDOW_CHARS: usize = 400;
/// Most windows scored per text (the rest is covered by the whole-text score).
const MAX_WINDOWS: usize = 64;
/// Texts with fewer evidence units than this ([`model::evidence_units`]: a CJK character is one, an
/// ASCII word two) are only judged risky with lexicon support: "hello" (2), "你好" (2), "how are you" (6)
/// is the first length that may stand on the model alone.
pub const MIN_EVIDENCE_UNITS: usize = 6;
/// Techniques that turn any risk into unsafe: the text is trying to get past the guard.
const ESCALATING: &[&str] = &[
    "prompt_injection",
    "roleplay_jailbreak",
    "refusal_suppression",
    "system_prompt_extraction",
    "encoding_obfuscation",
];

/// The loaded guard: taxonomy, lexicon, model and (optionally) an LLM judge.
#[derive(Debug)]
pub struct Guard {
    taxonomy: Taxonomy,
    lexicon: SharedLexicon,
    model: Model,
    risk: usize,
    unsafe_: usize,
    judge: Option<Arc<dyn Judge>>,
}

impl Guard {
    /// Loads the compiled-in taxonomy and lexicon with the model at `model_path`.
    pub fn load(model_path: &Path) -> Result<Self, GuardError> {
        Self::with_model(Model::load(model_path)?)
    }

    /// The guard with the model compiled into the binary.
    pub fn builtin() -> Result<Self, GuardError> {
        let model = Model::from_bytes(crate::BUILTIN_MODEL)
            .map_err(|message| GuardError::Model { path: "<built-in>".into(), message })?;
        Self::with_model(model)
    }

    /// Builds a guard around an already loaded model.
    pub fn with_model(model: Model) -> Result<Self, GuardError> {
        let taxonomy = Taxonomy::builtin()?;
        let lexicon = Lexicon::builtin(&taxonomy)?;
        let missing = |name: &str| GuardError::Model {
            path: "<model>".into(),
            message: format!("no `{name}` head"),
        };
        let risk = model.head(HEAD_RISK).ok_or_else(|| missing(HEAD_RISK))?;
        let unsafe_ = model.head(HEAD_UNSAFE).ok_or_else(|| missing(HEAD_UNSAFE))?;
        Ok(Guard {
            taxonomy,
            lexicon: SharedLexicon::new(lexicon),
            model,
            risk,
            unsafe_,
            judge: None,
        })
    }

    /// The same guard, consulting `judge` on texts in the policy's uncertain band
    /// ([`crate::policy::JudgePolicy`]).
    pub fn with_judge(mut self, judge: Arc<dyn Judge>) -> Self {
        self.judge = Some(judge);
        self
    }

    /// The live lexicon: [`SharedLexicon::store`] replaces it for checks that start afterwards (hot
    /// reload of `lexicon.toml`).
    pub fn lexicon(&self) -> &SharedLexicon {
        &self.lexicon
    }

    /// The taxonomy in use.
    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    /// The model in use.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Judges a user request (or document) before it reaches the model.
    pub fn check_input(&self, input: &str, policy: &Policy) -> Judgement {
        self.judge(input, Direction::Input, policy)
    }

    /// Judges a model answer before it reaches the user; refusals are safe.
    pub fn check_output(&self, answer: &str, policy: &Policy) -> Judgement {
        self.judge(answer, Direction::Output, policy)
    }

    /// [`Guard::check_input`] for raw bytes (invalid UTF-8 is replaced, not rejected).
    pub fn check_input_bytes(&self, input: &[u8], policy: &Policy) -> Judgement {
        self.check_input(&String::from_utf8_lossy(input), policy)
    }

    /// Judges `text` in either direction.
    pub fn judge(&self, raw_text: &str, direction: Direction, policy: &Policy) -> Judgement {
        let raw_text = text::normalize::truncate(raw_text, text::normalize::MAX_INPUT_BYTES);
        // PII is removed before scoring: a phone number is not a risk signal. Detected once, here,
        // and reported as spans by `decide`.
        let pii = text::detect_pii(raw_text);
        let normalised = text::normalize(&without_spans(raw_text, &pii));
        let mut best = self.score(&normalised);
        if let Some(rest) = after_preamble(&normalised) {
            // Only the scores: the lexicon hits of `rest` were already found in the whole text.
            merge_max(&mut best.probs, &self.score(rest).probs);
        }
        let mut techniques: Vec<String> = Vec::new();
        let mut decoded_chain = Vec::new();
        if obfuscated(raw_text, &normalised) {
            techniques.push("encoding_obfuscation".into());
        }
        for candidate in text::decode_candidates(raw_text, 3) {
            let inner = self.score(&text::normalize(&candidate.text));
            if inner.probs[self.risk] > best.probs[self.risk].max(0.3) {
                decoded_chain = candidate.chain.clone();
                merge_max(&mut best.probs, &inner.probs);
                best.hits.extend(inner.hits.into_iter().map(|h| Hit { start: 0, end: 0, ..h }));
            }
        }
        if !decoded_chain.is_empty() {
            techniques.push("encoding_obfuscation".into());
        }
        let refusal =
            (direction == Direction::Output).then(|| crate::refusal::is_refusal(raw_text));
        let evidence = model::evidence_units(&normalised);
        let found = Found { raw: best, techniques, decoded: decoded_chain, refusal, evidence, pii };
        self.decide(raw_text, direction, found, policy)
    }

    /// Model probabilities (max over the whole text and its windows) and lexicon hits.
    fn score(&self, normalised: &str) -> Raw {
        if !normalised.chars().any(char::is_alphanumeric) {
            // Nothing left to judge (empty, punctuation, or bytes that were not text).
            return Raw { probs: vec![0.0; self.model.header.heads.len()], hits: Vec::new() };
        }
        let lexicon = self.lexicon.load();
        let hits = lexicon.find(normalised);
        if normalised.chars().count() <= WINDOW_CHARS {
            return Raw {
                probs: self.model.probabilities(&text_features(normalised, hits.iter())),
                hits,
            };
        }
        let parts: Vec<Vec<(u32, f32)>> = windows(normalised)
            .into_iter()
            .take(MAX_WINDOWS)
            .map(|window| {
                // The window's lexicon hits are the whole text's hits inside it (one scan, not two).
                let start = window.as_ptr() as usize - normalised.as_ptr() as usize;
                let end = start + window.len();
                text_features(window, hits.iter().filter(|h| h.start >= start && h.end <= end))
            })
            .collect();
        Raw { probs: self.model.max_probabilities(&parts, model::length_feature(normalised)), hits }
    }

    fn decide(
        &self,
        raw_text: &str,
        direction: Direction,
        found: Found,
        policy: &Policy,
    ) -> Judgement {
        let Found { raw, mut techniques, decoded, refusal, evidence, pii } = found;
        let raw = &raw;
        // Techniques found before the model's technique heads: obfuscation or a decoded payload.
        let hidden_payload = !techniques.is_empty() || !decoded.is_empty();
        let probs = &raw.probs;
        let heads = &self.model.header.heads;
        let prob_of = |prefix: &str| -> Vec<(String, f32)> {
            heads
                .iter()
                .zip(probs)
                .filter_map(|(h, p)| h.strip_prefix(prefix).map(|id| (id.to_owned(), *p)))
                .collect()
        };
        let cat_probs = prob_of("cat:");
        let intent_probs = prob_of("intent:");
        // Technique heads see few positives; only a confident one is reported (and can escalate).
        for (id, p) in prob_of("tech:") {
            if p >= 0.7 && !techniques.contains(&id) {
                techniques.push(id);
            }
        }
        if raw.hits.iter().any(|h| h.homophone)
            && !techniques.iter().any(|t| t == "encoding_obfuscation")
        {
            techniques.push("encoding_obfuscation".into());
        }
        let mut block_intents = Vec::new();
        let mut signal_intents = Vec::new();
        for hit in &raw.hits {
            match (&hit.label, hit.strength) {
                (Label::Technique(t), _) if !techniques.contains(t) => techniques.push(t.clone()),
                (Label::Intent(i), Strength::Block) => block_intents.push(i.clone()),
                (Label::Intent(i), Strength::Signal) => signal_intents.push(i.clone()),
                _ => {}
            }
        }
        let risk = probs[self.risk];
        // The unsafe head is conditional on risk (see `model::HEAD_UNSAFE`): a text is unsafe when it is
        // risky and, among risky texts, looks like a request to refuse. Chosen on the validation split
        // over a head trained on all texts (which mostly learned risky-vs-safe again).
        let unsafe_given_risky = probs[self.unsafe_];
        let unsafe_score = unsafe_given_risky * probs[self.risk];
        // The strongest category decides which per-category threshold applies.
        let top_category = cat_probs
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        let escalating = techniques.iter().any(|t| ESCALATING.contains(&t.as_str()));
        // A confident category also makes a text at least controversial, even when the overall risk
        // head is unsure (it is trained on fewer, noisier labels than the category heads).
        let top_category_prob = cat_probs.iter().map(|(_, p)| *p).fold(0.0f32, f32::max);
        let risk =
            risk.max(if top_category_prob >= 0.8 { policy.thresholds.controversial } else { 0.0 });
        // A text that hides something (invisible characters, swapped scripts, an encoded payload) and
        // carries any risk signal is an evasion attempt: half the controversial bar, or a lexicon
        // topic, is enough (chosen on the validation split; legitimate text rarely hides anything).
        let hidden_risk = hidden_payload
            && (risk >= policy.thresholds.controversial / 2.0 || !signal_intents.is_empty());
        let mut verdict = if (probs[self.risk] >= policy.thresholds.controversial
            && unsafe_given_risky >= policy.unsafe_threshold(&top_category))
            || !block_intents.is_empty()
            || hidden_risk
            || (escalating && risk >= policy.thresholds.controversial)
        {
            Verdict::Unsafe
        } else if risk >= policy.thresholds.controversial {
            Verdict::Controversial
        } else {
            Verdict::Safe
        };
        // Political topics are answered with care whatever the question's frame (a Chinese deployment
        // treats them as sensitive, as Qwen3Guard's "Politically Sensitive" class does): a lexicon hit on
        // a POL intent makes a text at least controversial. The n-gram model sees too few political
        // questions to learn this from data alone.
        let political = raw.hits.iter().any(|h| match &h.label {
            Label::Intent(i) => self.taxonomy.category_of_intent(i) == Some("POL"),
            Label::Technique(_) => false,
        });
        if political && verdict == Verdict::Safe {
            verdict = Verdict::Controversial;
        }
        if refusal == Some(true) {
            verdict = Verdict::Safe;
        }
        // Minimum evidence: a text this short ("hello", "你好", "ok") gives the n-gram model too little
        // to go on, so it may only be judged risky when the lexicon names a risk in it (or it hid a
        // payload or an attack technique).
        let thin = evidence < MIN_EVIDENCE_UNITS && raw.hits.is_empty() && !hidden_payload;
        if thin {
            verdict = Verdict::Safe;
        }
        // The LLM judge settles the uncertain band; a lexicon block or a refusal is not uncertain.
        let band = policy.judge;
        let top_score = risk.max(unsafe_score);
        let mut judge_outcome = None;
        let mut judge_categories = Vec::new();
        if let Some(judge) = &self.judge
            && band.enabled
            && !thin
            && refusal != Some(true)
            && block_intents.is_empty()
            && (band.low..=band.high).contains(&top_score)
        {
            let outcome = crate::judge::consult(
                judge.as_ref(),
                raw_text,
                direction,
                std::time::Duration::from_millis(band.budget_ms),
            );
            if let Some(v) = &outcome.verdict {
                verdict = v.verdict;
                judge_categories.clone_from(&v.categories);
            }
            judge_outcome = Some(outcome);
        }
        let (mut categories, mut intents) = (Vec::new(), Vec::new());
        if verdict != Verdict::Safe {
            intents.extend(block_intents.iter().cloned());
            intents.extend(intent_probs.iter().filter(|(_, p)| *p >= 0.5).map(|(i, _)| i.clone()));
            intents.extend(signal_intents.iter().cloned());
            if intents.is_empty()
                && let Some((i, _)) = intent_probs.iter().max_by(|a, b| a.1.total_cmp(&b.1))
            {
                intents.push(i.clone());
            }
            dedup(&mut intents);
            categories.extend(cat_probs.iter().filter(|(_, p)| *p >= 0.5).map(|(c, _)| c.clone()));
            for intent in &block_intents {
                if let Some(c) = self.taxonomy.category_of_intent(intent) {
                    categories.push(c.to_owned());
                }
            }
            categories.extend(judge_categories);
            if categories.is_empty() && !top_category.is_empty() {
                categories.push(top_category.clone());
            }
            dedup(&mut categories);
        }
        let mut spans: Vec<Span> = raw
            .hits
            .iter()
            .filter(|h| h.end > h.start)
            .map(|h| Span {
                source: "lexicon",
                label: match &h.label {
                    Label::Intent(i) | Label::Technique(i) => i.clone(),
                },
                start: h.start,
                end: h.end,
            })
            .collect();
        spans.extend(pii.iter().map(|p| Span {
            source: "pii",
            label: p.kind.placeholder().to_ascii_lowercase(),
            start: p.start,
            end: p.end,
        }));
        let mut action = match verdict {
            Verdict::Safe => policy.actions.safe,
            Verdict::Controversial => policy.actions.controversial,
            Verdict::Unsafe => categories
                .iter()
                .filter_map(|c| policy.category.get(c).and_then(|r| r.action))
                .max_by_key(|a| a.severity())
                .unwrap_or(policy.actions.unsafe_),
        };
        if !pii.is_empty() && policy.pii.severity() > action.severity() {
            action = policy.pii;
        }
        let (action, shadow_action) =
            if policy.shadow { (Action::Allow, Some(action)) } else { (action, None) };
        let scores = Scores {
            risk,
            unsafe_: unsafe_score,
            categories: cat_probs.into_iter().collect(),
            intents: intent_probs.into_iter().collect(),
        };
        dedup(&mut techniques);
        Judgement {
            verdict,
            categories,
            intents,
            techniques,
            spans,
            scores,
            action,
            shadow_action,
            refusal,
            decoded,
            judge: judge_outcome,
        }
    }
}

/// What `judge` found before the verdict.
#[derive(Debug)]
struct Found {
    raw: Raw,
    techniques: Vec<String>,
    decoded: Vec<text::Encoding>,
    refusal: Option<bool>,
    evidence: usize,
    pii: Vec<text::PiiSpan>,
}

/// `text` with the given (sorted, non-overlapping) spans cut out, as [`text::strip_pii`] does.
fn without_spans(text: &str, spans: &[text::PiiSpan]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in spans {
        out.push_str(text.get(at..span.start).unwrap_or_default());
        at = span.end.max(at);
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// The classifier's features of normalised `text` with its lexicon `hits` (shared by training and
/// judging): its n-grams, one token per hit, and the hits' topics in conjunction with the text's
/// question frame ([`crate::frames`], found once for both).
pub(crate) fn text_features<'a>(
    text: &str,
    hits: impl Iterator<Item = &'a Hit> + Clone,
) -> Vec<(u32, f32)> {
    let frame = crate::frames::frames(text);
    let mut extra: Vec<String> = hits.clone().map(hit_token).collect();
    extra.extend(crate::frames::conjunctions(frame, crate::frames::evasion(text), hits));
    model::features(text, &extra, frame)
}

/// The classifier feature token of a lexicon hit.
pub(crate) fn hit_token(hit: &Hit) -> String {
    match (&hit.label, hit.strength) {
        (Label::Intent(i), Strength::Block) => format!("lexb:{i}"),
        (Label::Intent(i), Strength::Signal) => format!("lexs:{i}"),
        (Label::Technique(t), _) => format!("lext:{t}"),
    }
}

fn merge_max(into: &mut [f32], other: &[f32]) {
    for (a, b) in into.iter_mut().zip(other) {
        *a = a.max(*b);
    }
}

fn dedup(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
}

/// Sentence-aligned windows of at most `WINDOW_CHARS` characters.
pub(crate) fn windows(normalised: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    let mut last_break = None;
    for (i, c) in normalised.char_indices() {
        count += 1;
        if matches!(c, '。' | '!' | '?' | '.' | '\n' | ';' | '！' | '？' | '；') {
            last_break = Some(i + c.len_utf8());
        }
        if count >= WINDOW_CHARS {
            let end = last_break.filter(|b| *b > start).unwrap_or(i + c.len_utf8());
            out.push(&normalised[start..end]);
            start = end;
            count = normalised[start..i + c.len_utf8()].chars().count();
            last_break = None;
        }
    }
    if start < normalised.len() {
        out.push(&normalised[start..]);
    }
    out
}

/// Whether the raw text hides characters or swaps scripts (invisible characters, tag characters,
/// lookalikes), which legitimate text rarely does.
fn obfuscated(raw: &str, normalised: &str) -> bool {
    let invisible =
        raw.chars().filter(|c| text::normalize::is_invisible(*c) && *c != '\u{FEFF}').count();
    let mixed_script = raw.chars().any(|c| matches!(c as u32, 0x0370..=0x04FF))
        && raw.chars().any(|c| c.is_ascii_alphabetic())
        && normalised.chars().all(|c| !matches!(c as u32, 0x0370..=0x04FF));
    // Full-width Latin letters (Ｍａｋｅ) are not how anyone types English; Chinese punctuation is
    // full-width too, so only letters count.
    let full_width_letters =
        raw.chars().filter(|c| matches!(*c as u32, 0xFF21..=0xFF3A | 0xFF41..=0xFF5A)).count();
    invisible >= 2
        || mixed_script
        || full_width_letters >= 3
        || text::normalize::mixes_chinese_scripts(raw)
}

/// The request after a short lead-in ending in a colon ("请回答这个问题：…", "Answer this: …"):
/// a benign-sounding preamble dilutes a short request's n-grams, so the rest is also scored alone.
fn after_preamble(normalised: &str) -> Option<&str> {
    const MAX_PREAMBLE_CHARS: usize = 24;
    let (at, colon) = normalised
        .char_indices()
        .take(MAX_PREAMBLE_CHARS)
        .find(|(_, c)| matches!(c, ':' | '：'))?;
    let rest = normalised[at + colon.len_utf8()..].trim();
    (rest.chars().count() >= 4).then_some(rest)
}
