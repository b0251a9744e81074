//! The worker pool: `concurrency` tasks per process, each claiming attempts from the store, sending
//! them to the target (or refining them with the attacker model), judging the reply and recording the
//! outcome at once. Any number of processes may run the same campaign against one store; the store's
//! claim/lease/record protocol keeps every attempt recorded exactly once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::{
    RedteamError,
    attack::Attack,
    judge::{Judged, Panel},
    pair::{Attacker, Step},
    store::{Claimed, Outcome, Store},
    target::{Reply, Target},
};

/// How one process works on a campaign.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// This worker's id (host and process), recorded with its claims.
    pub worker: String,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Attempts claimed per store round trip by each task.
    pub batch: usize,
    /// How long a claim stays valid; a worker that dies loses its claims after this.
    pub lease: Duration,
    /// Stop claiming after this long.
    pub max_time: Option<Duration>,
    /// Stop claiming once the campaign's recorded tokens reach this (0: no limit).
    pub max_tokens: u64,
    /// When nothing is claimable but other workers hold live claims, wait for them (and take over
    /// those whose lease runs out) instead of returning.
    pub wait_for_leases: bool,
}

/// Live counters a progress display reads.
#[derive(Debug, Default)]
pub struct Progress {
    /// Attempts recorded by this process.
    pub recorded: AtomicU64,
    /// Of those, successes.
    pub success: AtomicU64,
    /// Of those, target errors.
    pub errors: AtomicU64,
    /// Tokens reported by the target (and attacker) in this process.
    pub tokens: AtomicU64,
}

/// Why a run returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Every attempt is recorded (or, without waiting, only other workers' claims are left).
    Finished,
    /// `max_time` ran out.
    Time,
    /// `max_tokens` was reached.
    Tokens,
    /// The target failed [`TARGET_DOWN_AFTER`] attempts in a row: it is down or misconfigured, and
    /// going on would only turn the rest of the campaign into errors.
    TargetDown,
}

/// Consecutive target errors after which a run stops.
pub const TARGET_DOWN_AFTER: u64 = 20;

/// What one run of one process did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub recorded: u64,
    pub success: u64,
    pub errors: u64,
    pub tokens: u64,
    pub seconds: f64,
    pub stop: Stop,
    /// The last target error seen, if any.
    pub last_error: Option<String>,
}

/// The result document stored with each attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptResult {
    /// What the target did (absent when it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// The judges' verdicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged: Option<Judged>,
    /// The target's error after its retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// LLM-driven attacks: the attack the attacker ended with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_attack: Option<Attack>,
    /// LLM-driven attacks: every refinement step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Which worker recorded it.
    pub worker: String,
    /// Wall time of the attempt in milliseconds.
    pub millis: u64,
}

/// Everything the workers share.
#[derive(Debug)]
pub struct Context {
    pub store: Arc<Store>,
    pub campaign: String,
    pub target: Arc<dyn Target>,
    pub panel: Panel,
    pub attacker: Option<Attacker>,
}

/// Whether a chain id asks for the attacker model.
pub fn is_llm_driven(chain: &str) -> bool {
    chain.split('+').any(|s| s == "pair" || s == "tap" || s == ADAPTIVE_CRESCENDO)
}

/// The chain id of adaptive crescendo (the attacker writes each turn after reading the answers).
pub const ADAPTIVE_CRESCENDO: &str = "crescendo_llm";

/// Runs workers until the campaign is done or a limit is hit. `already_tokens` is what the campaign
/// had used before this run (for `max_tokens`).
pub async fn run(
    ctx: Arc<Context>,
    options: RunOptions,
    progress: Arc<Progress>,
    already_tokens: u64,
) -> Result<RunSummary, RedteamError> {
    let start = Instant::now();
    let deadline = options.max_time.map(|t| start + t);
    let stop_time = Arc::new(AtomicBool::new(false));
    let stop_tokens = Arc::new(AtomicBool::new(false));
    let failing = Arc::new(AtomicU64::new(0));
    let last_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let (ctx, options, progress) = (Arc::clone(&ctx), options.clone(), Arc::clone(&progress));
        let (stop_time, stop_tokens) = (Arc::clone(&stop_time), Arc::clone(&stop_tokens));
        let failing = Arc::clone(&failing);
        let last_error = Arc::clone(&last_error);
        tasks.spawn(async move {
            let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX);
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    stop_time.store(true, Ordering::SeqCst);
                }
                if options.max_tokens > 0
                    && already_tokens + progress.tokens.load(Ordering::SeqCst) >= options.max_tokens
                {
                    stop_tokens.store(true, Ordering::SeqCst);
                }
                if stop_time.load(Ordering::SeqCst)
                    || stop_tokens.load(Ordering::SeqCst)
                    || failing.load(Ordering::SeqCst) >= TARGET_DOWN_AFTER
                {
                    return Ok(());
                }
                let batch = ctx
                    .store
                    .claim(&ctx.campaign, &options.worker, options.batch, lease_ms)
                    .await?;
                if batch.is_empty() {
                    match ctx.store.next_lease_expiry_ms(&ctx.campaign).await? {
                        Some(ms) if options.wait_for_leases => {
                            let ms = u64::try_from(ms).unwrap_or(0).clamp(20, 1000);
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            continue;
                        }
                        _ => return Ok(()),
                    }
                }
                let mut batch = batch.into_iter();
                while let Some(claimed) = batch.next() {
                    if failing.load(Ordering::SeqCst) >= TARGET_DOWN_AFTER {
                        // Hand back the rest of the batch rather than turn it into errors.
                        let rest: Vec<String> =
                            std::iter::once(claimed).chain(batch).map(|c| c.id).collect();
                        ctx.store.release(&ctx.campaign, &options.worker, &rest).await?;
                        return Ok(());
                    }
                    let outcome = execute(&ctx, &options.worker, claimed).await;
                    let recorded =
                        ctx.store.record(&ctx.campaign, std::slice::from_ref(&outcome)).await?;
                    if outcome.error {
                        failing.fetch_add(1, Ordering::SeqCst);
                        if let Ok(mut last) = last_error.lock() {
                            *last = outcome.message.clone();
                        }
                    } else {
                        failing.store(0, Ordering::SeqCst);
                    }
                    if recorded > 0 {
                        progress.recorded.fetch_add(1, Ordering::SeqCst);
                        progress.tokens.fetch_add(outcome.tokens, Ordering::SeqCst);
                        if outcome.error {
                            progress.errors.fetch_add(1, Ordering::SeqCst);
                        } else if outcome.success {
                            progress.success.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| RedteamError::Store(format!("worker task: {e}")))?;
        if let Err(e) = result {
            first_error.get_or_insert(e);
            tasks.abort_all();
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let stop = if failing.load(Ordering::SeqCst) >= TARGET_DOWN_AFTER {
        Stop::TargetDown
    } else if stop_time.load(Ordering::SeqCst) {
        Stop::Time
    } else if stop_tokens.load(Ordering::SeqCst) {
        Stop::Tokens
    } else {
        Stop::Finished
    };
    Ok(RunSummary {
        recorded: progress.recorded.load(Ordering::SeqCst),
        success: progress.success.load(Ordering::SeqCst),
        errors: progress.errors.load(Ordering::SeqCst),
        tokens: progress.tokens.load(Ordering::SeqCst),
        seconds: start.elapsed().as_secs_f64(),
        stop,
        last_error: last_error.lock().ok().and_then(|l| l.clone()),
    })
}

/// Sends (or refines), judges, and builds the outcome of one attempt; target failures become an
/// `error` outcome, never a worker failure.
async fn execute(ctx: &Context, worker: &str, claimed: Claimed) -> Outcome {
    let start = Instant::now();
    let mut result = AttemptResult { worker: worker.to_owned(), ..AttemptResult::default() };
    let mut tokens = 0;
    let mut success = false;
    if is_llm_driven(&claimed.strategy) {
        match &ctx.attacker {
            None => {
                result.error = Some(format!(
                    "strategy `{}` needs an [attacker] model in the campaign file",
                    claimed.strategy
                ));
            }
            Some(attacker) => {
                let adaptive = claimed.strategy.split('+').any(|s| s == ADAPTIVE_CRESCENDO);
                let refined = if adaptive {
                    attacker.escalate(ctx.target.as_ref(), &ctx.panel, &claimed.attack).await
                } else {
                    attacker.refine(ctx.target.as_ref(), &ctx.panel, &claimed.attack).await
                };
                match refined {
                    Ok(refined) => {
                        tokens = refined.reply.tokens + refined.attacker_tokens;
                        success = refined.judged.success;
                        result.final_attack = Some(refined.attack);
                        result.steps = refined.steps;
                        result.reply = Some(refined.reply);
                        result.judged = Some(refined.judged);
                    }
                    Err(e) => result.error = Some(e.to_string()),
                }
            }
        }
    } else {
        match ctx.target.send(&claimed.attack).await {
            Ok(reply) => {
                let judged = ctx.panel.judge(&claimed.attack, &reply).await;
                tokens = reply.tokens;
                success = judged.success;
                result.reply = Some(reply);
                result.judged = Some(judged);
            }
            Err(e) => result.error = Some(e.to_string()),
        }
    }
    result.millis = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let error = result.error.is_some();
    Outcome {
        id: claimed.id,
        error,
        message: result.error.clone(),
        success,
        tokens,
        // Serialising plain data cannot fail; an empty document would still record the attempt.
        result: serde_json::to_string(&result).unwrap_or_default(),
    }
}
