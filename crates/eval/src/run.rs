//! Running a task against a backend: ask what the store does not hold yet (in parallel, within the
//! backend's limits), store each answer as it arrives, then score every sample on both paths.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{
    EvalError,
    backend::Backend,
    judge::{Judge, Judged},
    metrics, stats,
    store::{Answer, Store},
    task::{Sample, Scoring, Task, TaskKind},
};

/// How a run asks.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Which scoring paths run.
    pub scoring: Scoring,
    /// Score only the first `limit` samples.
    pub limit: Option<usize>,
    /// Ask again even when the store holds an answer (the new answer replaces it).
    pub no_cache: bool,
    /// Samples in flight at once (the backend's own limits still apply).
    pub concurrency: usize,
}

/// The log-likelihood path's outcome for one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoglikResult {
    /// Log-probability of each option.
    pub logprobs: Vec<f64>,
    /// The option with the highest log-probability.
    pub pred: String,
    /// The option with the highest log-probability per byte of its continuation.
    pub pred_norm: String,
}

/// The generation path's outcome for one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenResult {
    /// What the model wrote.
    pub raw: String,
    /// The extracted answer; `None` = unextractable (scored as wrong).
    pub extracted: Option<String>,
    /// The extractor used.
    pub extractor: String,
}

/// One sample's scored result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// Sample id.
    pub id: String,
    /// The reference answer.
    pub target: String,
    /// Log-likelihood path, when it ran.
    pub loglik: Option<LoglikResult>,
    /// Generation path, when it ran.
    pub generate: Option<GenResult>,
    /// The judge's verdict, when the task has a judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<Judged>,
    /// Every metric of the task on this sample.
    pub scores: BTreeMap<String, f64>,
    /// Whether the answer came from the store.
    pub cached: bool,
}

/// A metric's mean with its bootstrap 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean over samples.
    pub mean: f64,
    /// Lower end of the 95% interval.
    pub lo: f64,
    /// Upper end of the 95% interval.
    pub hi: f64,
}

/// A task's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Task name.
    pub task: String,
    /// Ability or domain.
    pub group: Option<String>,
    /// Task version (hash of spec, template and data).
    pub version: String,
    /// Model id.
    pub model: String,
    /// Metric names, headline first.
    pub metric_names: Vec<String>,
    /// Summaries by metric.
    pub metrics: BTreeMap<String, Summary>,
    /// Share of generations with no extractable answer.
    pub unextractable_rate: Option<f64>,
    /// Samples asked in this run.
    pub asked: usize,
    /// Samples answered from the store.
    pub cached: usize,
    /// Samples the backend cannot take (images to a text-only model): reported, left out of the scores.
    #[serde(default)]
    pub unsupported: usize,
    /// Every sample.
    pub samples: Vec<SampleResult>,
}

impl TaskResult {
    /// The headline score (first metric), if any sample had it.
    pub fn headline(&self) -> Option<(&str, Summary)> {
        self.metric_names.iter().find_map(|m| self.metrics.get(m).map(|s| (m.as_str(), *s)))
    }
}

fn params_key(task: &Task, scoring: Scoring) -> String {
    format!(
        "scoring={scoring:?};max_tokens={};continuation={}",
        task.spec.max_tokens, task.spec.continuation
    )
}

async fn ask(
    task: &Task,
    sample: &Sample,
    backend: &dyn Backend,
    scoring: Scoring,
) -> Result<Answer, EvalError> {
    let prompt = task.prompt(sample)?;
    if !sample.images.is_empty() {
        // Images go only through chat generation; a backend without image input is reported, not scored.
        if !scoring.generate() || !backend.supports_images() {
            return Err(EvalError::Unsupported(format!("image input (sample {})", sample.id)));
        }
        let urls = sample
            .images
            .iter()
            .map(|i| crate::load::image_data_url(i))
            .collect::<Result<Vec<_>, _>>()?;
        let raw = backend.generate_with_images(&prompt, &urls, task.spec.max_tokens).await?;
        return Ok(Answer { loglik: None, raw: Some(raw), judged: None });
    }
    let loglik = if scoring.loglik() && !sample.choices.is_empty() {
        let conts: Vec<String> =
            (0..sample.choices.len()).map(|i| task.continuation(sample, i)).collect();
        Some(backend.loglik(&prompt, &conts).await?)
    } else {
        None
    };
    let raw = if scoring.generate() {
        Some(backend.generate(&prompt, task.spec.max_tokens).await?)
    } else {
        None
    };
    Ok(Answer { loglik, raw, judged: None })
}

/// Whether `answer` still needs `judge`'s verdict (none yet, or another judge's).
fn needs_verdict(answer: &Answer, judge: Option<&dyn Judge>) -> bool {
    match (judge, &answer.raw) {
        (Some(j), Some(_)) => answer.judged.as_ref().is_none_or(|v| v.judge != j.id()),
        _ => false,
    }
}

/// Asks the model unless `cached` holds its answer, then asks the judge unless the answer already
/// carries this judge's verdict. Returns the answer and whether anything changed (to be stored).
async fn ask_and_judge(
    task: &Task,
    sample: &Sample,
    backend: &dyn Backend,
    judge: Option<&dyn Judge>,
    cached: Option<Answer>,
    scoring: Scoring,
) -> Result<(Answer, bool), EvalError> {
    let (mut answer, mut changed) = match cached {
        Some(a) => (a, false),
        None => (ask(task, sample, backend, scoring).await?, true),
    };
    if let (Some(j), Some(raw)) = (judge.filter(|_| needs_verdict(&answer, judge)), &answer.raw) {
        let question = task.prompt(sample)?;
        answer.judged = Some(j.judge(&question, &sample.target, raw).await?);
        changed = true;
    }
    Ok((answer, changed))
}

/// Scores `answer` for `sample`: predictions, extraction and every metric of the task.
pub fn score(task: &Task, sample: &Sample, answer: &Answer, cached: bool) -> SampleResult {
    let loglik = answer
        .loglik
        .as_ref()
        .filter(|lps| lps.len() == sample.choices.len() && !lps.is_empty())
        .map(|lps| {
            let argmax = |f: &dyn Fn(usize) -> f64| {
                // The first of equal maxima, so ties never favour the last option.
                (0..lps.len())
                    .rev()
                    .max_by(|&a, &b| f(a).total_cmp(&f(b)))
                    .map_or(String::new(), |i| sample.choices[i].0.clone())
            };
            let norm = |i: usize| lps[i] / task.continuation(sample, i).len().max(1) as f64;
            LoglikResult {
                logprobs: lps.clone(),
                pred: argmax(&|i| lps[i]),
                pred_norm: argmax(&norm),
            }
        });
    let extractor = task.spec.extractor();
    let generate = answer.raw.as_ref().map(|raw| GenResult {
        raw: raw.clone(),
        extracted: extractor.extract(raw, &sample.choices),
        extractor: extractor.name().to_owned(),
    });
    let target = if task.spec.kind == TaskKind::Open {
        sample.target.clone()
    } else {
        sample.target.trim().to_owned()
    };
    let mut result = SampleResult {
        id: sample.id.clone(),
        target,
        loglik,
        generate,
        judged: answer.judged.clone(),
        scores: BTreeMap::new(),
        cached,
    };
    for name in task.spec.metric_names() {
        if let Some(s) = metrics::score(&name, &result) {
            result.scores.insert(name, s);
        }
    }
    result
}

/// Runs `task` against `backend`, storing each answer in `store` as it arrives; `progress` is called
/// with the number of samples done. A failing request stops the run after storing what was answered,
/// so the next run resumes there.
pub async fn run_task(
    task: &Task,
    backend: &dyn Backend,
    store: &Store,
    options: RunOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<TaskResult, EvalError> {
    run_task_judged(task, backend, None, store, options, progress).await
}

/// [`run_task`] for tasks scored by a judge: every generated answer also gets `judge`'s verdict, stored
/// with it. Cached answers without this judge's verdict are judged without asking the model again.
pub async fn run_task_judged(
    task: &Task,
    backend: &dyn Backend,
    judge: Option<&dyn Judge>,
    store: &Store,
    options: RunOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<TaskResult, EvalError> {
    let judge = match (task.spec.judge, judge) {
        (None, _) => None,
        (Some(role), Some(j)) if j.role() == role => Some(j),
        (Some(role), _) => {
            return Err(EvalError::Unsupported(format!(
                "task {} without a {role:?} judge (see --judge)",
                task.spec.name
            )));
        }
    };
    let samples: Vec<&Sample> =
        task.samples.iter().take(options.limit.unwrap_or(usize::MAX)).collect();
    let params = params_key(task, options.scoring);
    let model = backend.model();
    let mut answers: Vec<Option<(Answer, bool)>> = vec![None; samples.len()];
    let mut todo = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        match store.get((model, &task.version, &s.id, &params)).await? {
            Some(a) if !options.no_cache && !needs_verdict(&a, judge) => {
                answers[i] = Some((a, true));
            }
            Some(a) if !options.no_cache => todo.push((i, Some(a))),
            _ => todo.push((i, None)),
        }
    }
    let mut done = samples.len() - todo.len();
    progress(done);
    let mut stream = futures_util::stream::iter(todo.into_iter().map(|(i, cached)| {
        let sample = samples[i];
        let was_cached = cached.is_some();
        async move {
            let outcome =
                ask_and_judge(task, sample, backend, judge, cached, options.scoring).await;
            (i, was_cached, outcome)
        }
    }))
    .buffer_unordered(options.concurrency.max(1));
    let mut failure = None;
    let mut unsupported = 0;
    while let Some((i, was_cached, outcome)) = stream.next().await {
        match outcome {
            Err(EvalError::Unsupported(_)) if !samples[i].images.is_empty() => {
                unsupported += 1;
                done += 1;
                progress(done);
            }
            Ok((answer, changed)) => {
                if changed {
                    store
                        .put(
                            (model, &task.version, &samples[i].id, &params),
                            &task.spec.name,
                            &answer,
                        )
                        .await?;
                }
                answers[i] = Some((answer, was_cached));
                done += 1;
                progress(done);
            }
            Err(e) => {
                // Keep storing what is already in flight, then report the first failure.
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let results: Vec<SampleResult> = samples
        .iter()
        .zip(answers)
        .filter_map(|(s, a)| a.map(|(a, cached)| score(task, s, &a, cached)))
        .collect();
    let mut result = summarize(task, model, results);
    result.unsupported = unsupported;
    Ok(result)
}

fn summarize(task: &Task, model: &str, samples: Vec<SampleResult>) -> TaskResult {
    let metric_names = task.spec.metric_names();
    let mut metrics = BTreeMap::new();
    for name in &metric_names {
        let values: Vec<f64> = samples.iter().filter_map(|s| s.scores.get(name).copied()).collect();
        if !values.is_empty() {
            let (lo, hi) = stats::bootstrap_ci(&values, 1000, 0);
            metrics.insert(name.clone(), Summary { mean: stats::mean(&values), lo, hi });
        }
    }
    let gens: Vec<&GenResult> = samples.iter().filter_map(|s| s.generate.as_ref()).collect();
    let unextractable_rate = (!gens.is_empty())
        .then(|| gens.iter().filter(|g| g.extracted.is_none()).count() as f64 / gens.len() as f64);
    let cached = samples.iter().filter(|s| s.cached).count();
    TaskResult {
        task: task.spec.name.clone(),
        group: task.spec.group.clone(),
        version: task.version.clone(),
        model: model.to_owned(),
        metric_names,
        metrics,
        unextractable_rate,
        asked: samples.len() - cached,
        cached,
        unsupported: 0,
        samples,
    }
}
