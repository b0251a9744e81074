//! Continuous batching for the in-process engine.
//!
//! One thread owns the model and its paged KV cache. Every step it admits waiting requests while the cache
//! budget allows, gives each running sequence one decode token, fills the rest of the step's token budget
//! with prompt chunks (chunked prefill), runs one batched forward pass, samples, and streams each new piece
//! of text to its request's channel. A request whose client went away (its channel closed) is dropped and its
//! cache freed at the next step. Finished prompts are kept as reusable prefixes: a new prompt that starts
//! with a cached one (a long shared system prompt) forks its blocks and prefills only the rest.
//!
//! Scoring requests (`echo` + `logprobs`) reuse prefixes too: a scored prompt keeps each token's
//! log-probability next to its KV blocks, so a later prompt with the same start (the next option of a
//! multiple-choice question) copies those and computes only its own tail. A request whose prompt shares a
//! long start with one still being prefilled waits for it instead of computing the same tokens twice.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use engine::{
    batch::{self, LogitsWanted, SeqChunk},
    constrain::Constraint,
    kv_cache::{KvCache, SeqId},
    model::CausalLm,
    sampling::{self, Sampler, SamplingParams, StopMatcher, TokenLogprob},
    tokenizer::{StreamDecoder, Tokenizer},
};
use tokio::sync::mpsc::UnboundedSender;

/// How the scheduler spends the machine.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Most tokens one forward pass processes (decode tokens plus prompt chunks).
    pub max_step_tokens: usize,
    /// Most sequences generating at once.
    pub max_running: usize,
    /// Most requests waiting for admission; more are refused with 429.
    pub max_waiting: usize,
    /// How long a request may wait for admission before it is refused.
    pub queue_timeout: Duration,
    /// Cached prompt prefixes kept for reuse; 0 turns prefix reuse off (also between running requests).
    pub max_prefixes: usize,
}

/// One generation to run.
#[derive(Debug)]
pub struct GenRequest {
    /// Prompt token ids (BOS included when the model wants it).
    pub prompt: Vec<u32>,
    /// Sampling parameters.
    pub params: SamplingParams,
    /// Most tokens to generate (0: only score the prompt).
    pub max_tokens: usize,
    /// Stop strings: output ends right before the first one.
    pub stop: Vec<String>,
    /// Return the log-probability (and `params.top_logprobs` alternatives) of every prompt token.
    pub prompt_logprobs: bool,
    /// `response_format`: only output that keeps the document valid is sampled, and generation ends when it
    /// is complete.
    pub constraint: Option<Constraint>,
    /// Where events go; closing it cancels the request.
    pub events: UnboundedSender<Event>,
    /// When the request arrived (for the queue timeout).
    pub arrived: Instant,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context window is full.
    Length,
}

/// One prompt token's score: its log-probability given the tokens before it (`None` for the first token) and
/// the most likely alternatives, best first.
pub type ScoredToken = (Option<f32>, Vec<TokenLogprob>);

/// Alternatives kept per scored prompt token whatever the request asked for (the most `/v1/completions`
/// allows), so that any later scoring request can reuse a cached prefix's scores.
const PROMPT_TOP_KEPT: usize = 5;

/// Shortest shared start worth reusing (shorter ones cost more bookkeeping than they save).
const MIN_REUSE: usize = 16;

/// What a request hears back, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Prompt scoring: for each prompt token, its log-probability (`None` for the first) and alternatives.
    Prompt(Vec<ScoredToken>),
    /// One generated token and the text it completed (possibly empty while a character or stop string is
    /// incomplete).
    Token {
        /// The token id.
        id: u32,
        /// New output text.
        text: String,
        /// Its log-probability.
        logprob: f32,
        /// The most likely alternatives.
        top: Vec<TokenLogprob>,
    },
    /// Output text released at the end (held back until then as a possible stop string).
    Text(String),
    /// The end, with usage.
    Done {
        /// Why it ended.
        finish: Finish,
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Generated tokens.
        completion_tokens: usize,
        /// Prompt tokens served from a cached prefix instead of being computed.
        cached_tokens: usize,
    },
    /// The request failed (queue full or timed out, engine error).
    Failed {
        /// 429 or 500-class.
        overloaded: bool,
        /// What went wrong.
        message: String,
    },
}

/// Live counters for `/metrics` and admission.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Requests waiting for admission.
    pub waiting: AtomicUsize,
    /// Sequences generating.
    pub running: AtomicUsize,
    /// KV-cache tokens in use (running sequences and cached prefixes).
    pub kv_used_tokens: AtomicUsize,
    /// KV-cache capacity in tokens.
    pub kv_total_tokens: AtomicUsize,
    /// Tokens generated since start.
    pub generated_tokens: AtomicUsize,
    /// Prompt tokens processed since start.
    pub prompt_tokens: AtomicUsize,
    /// Prompt tokens reused from cached prefixes since start.
    pub cached_prompt_tokens: AtomicUsize,
}

/// A handle for submitting requests to the scheduler thread.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    submit: mpsc::SyncSender<GenRequest>,
    /// Live counters.
    pub stats: Arc<SchedulerStats>,
    max_waiting: usize,
}

impl SchedulerHandle {
    /// Queues a request; refuses at once (with an event) when the queue is full.
    pub fn submit(&self, request: GenRequest) {
        if self.stats.waiting.load(Ordering::Relaxed) >= self.max_waiting {
            let _ = request.events.send(Event::Failed {
                overloaded: true,
                message: format!(
                    "the server is at capacity ({} requests waiting); retry later",
                    self.max_waiting
                ),
            });
            return;
        }
        self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::TrySendError::Full(request) | mpsc::TrySendError::Disconnected(request)) =
            self.submit.try_send(request)
        {
            self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
            let _ = request.events.send(Event::Failed {
                overloaded: true,
                message: "the engine is not accepting requests".to_owned(),
            });
        }
    }
}

/// Starts the scheduler thread, which owns the model and cache until every handle is dropped.
pub fn spawn(
    model: Box<dyn CausalLm>,
    cache: KvCache,
    tokenizer: Arc<Tokenizer>,
    config: SchedulerConfig,
) -> std::io::Result<SchedulerHandle> {
    let (submit, inbox) = mpsc::sync_channel(config.max_waiting.max(1));
    let stats = Arc::new(SchedulerStats::default());
    stats
        .kv_total_tokens
        .store(cache.total_blocks() * cache.geometry().block_size, Ordering::Relaxed);
    let mut scheduler = Scheduler {
        model,
        cache,
        tokenizer,
        config,
        stats: stats.clone(),
        inbox,
        waiting: VecDeque::new(),
        running: Vec::new(),
        prefixes: Vec::new(),
        committed: 0,
    };
    std::thread::Builder::new()
        .name("finllm-scheduler".to_owned())
        .spawn(move || scheduler.run())?;
    Ok(SchedulerHandle { submit, stats, max_waiting: config.max_waiting })
}

struct Running {
    request: GenRequest,
    seq: SeqId,
    /// Prompt tokens already in the cache.
    prefilled: usize,
    /// Prompt tokens taken from a cached prefix.
    cached: usize,
    /// Token sampled but not yet fed back.
    pending: Option<u32>,
    generated: Vec<u32>,
    sampler: Sampler,
    decoder: StreamDecoder,
    stops: StopMatcher,
    /// Cache tokens reserved at admission (prompt + max_tokens).
    budget: usize,
    /// Scoring requests: the score of each prompt token whose predecessor has been computed (always
    /// `min(prefilled, prompt.len() - 1) + 1` entries), with [`Running::scored_top`] alternatives.
    scored: Vec<ScoredToken>,
    /// Alternatives kept per scored token.
    scored_top: usize,
}

struct Prefix {
    seq: SeqId,
    tokens: Vec<u32>,
    last_used: Instant,
    /// One score per token when the prompt was scored (with `scored_top` alternatives each).
    scored: Option<Vec<ScoredToken>>,
    scored_top: usize,
}

/// Where a new request's first tokens already are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A cached prefix (index into `prefixes`).
    Prefix(usize),
    /// A running sequence (index into `running`).
    Running(usize),
}

/// How a new request starts: fork `tokens` tokens of `source` (`None`: compute everything), or wait because
/// a running request is about to have a much longer shared start ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reuse {
    source: Option<Source>,
    tokens: usize,
    wait: bool,
}

/// Tokens a request can take from a sequence holding `held` (whose first `ready` have their KV and, for
/// scoring, their scores ready): the shared start, less the last shared token when scoring (its score needs
/// the row before it, which is not kept), and at least the prompt's last token left to compute. Returns
/// (usable now, usable once everything shared is ready).
fn reusable(held: &[u32], ready: usize, prompt: &[u32], scoring: bool) -> (usize, usize) {
    let common = held.iter().zip(prompt).take_while(|(a, b)| a == b).count();
    let full =
        if scoring { common.saturating_sub(1) } else { common.min(prompt.len().saturating_sub(1)) };
    (full.min(ready), full)
}

struct Scheduler {
    model: Box<dyn CausalLm>,
    cache: KvCache,
    tokenizer: Arc<Tokenizer>,
    config: SchedulerConfig,
    stats: Arc<SchedulerStats>,
    inbox: mpsc::Receiver<GenRequest>,
    waiting: VecDeque<GenRequest>,
    running: Vec<Running>,
    prefixes: Vec<Prefix>,
    /// Cache tokens promised to running sequences.
    committed: usize,
}

impl Scheduler {
    fn run(&mut self) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match self.inbox.recv() {
                    Ok(request) => self.waiting.push_back(request),
                    Err(_) => return,
                }
            }
            while let Ok(request) = self.inbox.try_recv() {
                self.waiting.push_back(request);
            }
            self.drop_cancelled();
            self.admit();
            self.publish_stats();
            if self.running.is_empty() {
                // Everything waiting is blocked on cache space held by nobody: impossible unless a request is
                // larger than the whole cache, which `admit` refuses. Wait for news.
                if !self.waiting.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            self.step();
        }
    }

    fn publish_stats(&self) {
        self.stats.waiting.store(self.waiting.len(), Ordering::Relaxed);
        self.stats.running.store(self.running.len(), Ordering::Relaxed);
        let total = self.stats.kv_total_tokens.load(Ordering::Relaxed);
        self.stats
            .kv_used_tokens
            .store(total.saturating_sub(self.cache.free_tokens()), Ordering::Relaxed);
    }

    fn capacity(&self) -> usize {
        self.stats.kv_total_tokens.load(Ordering::Relaxed)
    }

    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].request.events.is_closed() {
                let gone = self.running.swap_remove(i);
                self.release(&gone);
            } else {
                i += 1;
            }
        }
        self.waiting.retain(|request| !request.events.is_closed());
    }

    fn release(&mut self, running: &Running) {
        let _ = self.cache.free_sequence(running.seq);
        self.committed = self.committed.saturating_sub(running.budget);
    }

    /// Admits waiting requests in arrival order while the cache can hold their whole budget. A request
    /// waiting for a running request's shared start to be computed is passed over until it is.
    fn admit(&mut self) {
        let mut next = 0;
        while let Some(request) = self.waiting.get(next) {
            if request.arrived.elapsed() > self.config.queue_timeout {
                if let Some(request) = self.waiting.remove(next) {
                    let _ = request.events.send(Event::Failed {
                        overloaded: true,
                        message: format!(
                            "waited longer than {:?} for a free slot; retry later",
                            self.config.queue_timeout
                        ),
                    });
                }
                continue;
            }
            let budget = request.prompt.len() + request.max_tokens;
            if budget > self.capacity() {
                if let Some(request) = self.waiting.remove(next) {
                    let _ = request.events.send(Event::Failed {
                        overloaded: false,
                        message: format!("the request needs {budget} cache tokens, more than the whole cache holds ({})", self.capacity()),
                    });
                }
                continue;
            }
            if self.running.len() >= self.config.max_running {
                return;
            }
            if self.committed + budget > self.capacity() {
                // Wait for running sequences to finish and give their space back.
                return;
            }
            if self.plan_reuse(request).wait {
                next += 1;
                continue;
            }
            // Cached prefixes are a cache: they make room for admitted work.
            while self.committed + budget + self.prefix_tokens() > self.capacity()
                && self.evict_prefix()
            {}
            let Some(request) = self.waiting.remove(next) else { return };
            let reuse = self.plan_reuse(&request);
            self.start(request, budget, reuse);
        }
    }

    fn prefix_tokens(&self) -> usize {
        self.prefixes.iter().map(|p| p.tokens.len()).sum()
    }

    /// Drops the least recently used cached prefix; false when none is left.
    fn evict_prefix(&mut self) -> bool {
        let Some(oldest) =
            self.prefixes.iter().enumerate().min_by_key(|(_, p)| p.last_used).map(|(i, _)| i)
        else {
            return false;
        };
        let prefix = self.prefixes.swap_remove(oldest);
        let _ = self.cache.free_sequence(prefix.seq);
        true
    }

    fn start(&mut self, request: GenRequest, budget: usize, reuse: Reuse) {
        let sampler = match Sampler::new(request.params.clone()) {
            Ok(sampler) => sampler,
            Err(err) => {
                let _ = request
                    .events
                    .send(Event::Failed { overloaded: false, message: err.to_string() });
                return;
            }
        };
        let scored_top = PROMPT_TOP_KEPT.max(request.params.top_logprobs);
        let mut seq = None;
        let mut cached = 0;
        let mut scored = Vec::new();
        if let Some(source) = reuse.source {
            let (from, source_scored) = match source {
                Source::Prefix(i) => {
                    let prefix = &mut self.prefixes[i];
                    prefix.last_used = Instant::now();
                    (prefix.seq, prefix.scored.as_deref())
                }
                Source::Running(i) => {
                    let r = &self.running[i];
                    (r.seq, r.request.prompt_logprobs.then_some(r.scored.as_slice()))
                }
            };
            let copied = match (request.prompt_logprobs, source_scored) {
                (false, _) => Some(Vec::new()),
                (true, Some(s)) => s.get(..=reuse.tokens).map(|s| {
                    s.iter()
                        .map(|(lp, top)| (*lp, top[..top.len().min(scored_top)].to_vec()))
                        .collect()
                }),
                (true, None) => None,
            };
            if let Some(copied) = copied
                && let Ok(forked) = self.cache.fork(from, reuse.tokens)
            {
                seq = Some(forked);
                cached = reuse.tokens;
                scored = copied;
            }
        }
        if request.prompt_logprobs && scored.is_empty() {
            scored.push((None, Vec::new()));
        }
        let seq = seq.unwrap_or_else(|| self.cache.add_sequence());
        self.committed += budget;
        self.stats.cached_prompt_tokens.fetch_add(cached, Ordering::Relaxed);
        let stops = StopMatcher::new(&request.stop);
        self.running.push(Running {
            request,
            seq,
            prefilled: cached,
            cached,
            pending: None,
            generated: Vec::new(),
            sampler,
            decoder: StreamDecoder::after_prompt(),
            stops,
            budget,
            scored,
            scored_top,
        });
    }

    /// How `request` can start: from the cached prefix or running sequence that already holds the longest
    /// start of its prompt, or by waiting for a running request that is still prefilling a start at least
    /// [`MIN_REUSE`] tokens longer than anything ready now.
    fn plan_reuse(&self, request: &GenRequest) -> Reuse {
        let none = Reuse { source: None, tokens: 0, wait: false };
        if self.config.max_prefixes == 0 {
            return none;
        }
        let scoring = request.prompt_logprobs;
        let needed_top = request.params.top_logprobs;
        let prefixes = self.prefixes.iter().enumerate().filter_map(|(i, p)| {
            let usable = !scoring || (p.scored.is_some() && p.scored_top >= needed_top);
            usable.then(|| {
                let (now, full) = reusable(&p.tokens, p.tokens.len(), &request.prompt, scoring);
                (Source::Prefix(i), now, full)
            })
        });
        let running = self.running.iter().enumerate().filter_map(|(i, r)| {
            let usable = !scoring || (r.request.prompt_logprobs && r.scored_top >= needed_top);
            usable.then(|| {
                let ready = if scoring {
                    r.prefilled.min(r.scored.len().saturating_sub(1))
                } else {
                    r.prefilled
                };
                let (now, full) = reusable(&r.request.prompt, ready, &request.prompt, scoring);
                (Source::Running(i), now, full)
            })
        });
        let candidates: Vec<(Source, usize, usize)> = prefixes.chain(running).collect();
        let best = candidates
            .iter()
            .filter(|(_, now, _)| *now >= MIN_REUSE)
            .max_by_key(|(_, now, _)| *now)
            .map_or(none, |&(source, tokens, _)| Reuse {
                source: Some(source),
                tokens,
                wait: false,
            });
        let wait = candidates.iter().any(|&(source, now, full)| {
            matches!(source, Source::Running(_)) && now < full && full >= best.tokens + MIN_REUSE
        });
        Reuse { wait, ..best }
    }

    fn step(&mut self) {
        // Decode tokens first (one each), then prompt chunks in admission order within the token budget.
        let mut budget = self.config.max_step_tokens.max(1);
        let mut plan: Vec<(usize, usize, usize, LogitsWanted)> = Vec::new(); // (running index, from, to, logits)
        for (i, r) in self.running.iter().enumerate() {
            if r.pending.is_some() && budget > 0 {
                plan.push((i, 0, 0, LogitsWanted::Last));
                budget -= 1;
            }
        }
        for (i, r) in self.running.iter().enumerate() {
            if r.pending.is_none() && r.prefilled < r.request.prompt.len() && budget > 0 {
                let to = (r.prefilled + budget).min(r.request.prompt.len());
                let logits = if r.request.prompt_logprobs {
                    LogitsWanted::All
                } else if to == r.request.prompt.len() {
                    LogitsWanted::Last
                } else {
                    LogitsWanted::None
                };
                budget -= to - r.prefilled;
                plan.push((i, r.prefilled, to, logits));
            }
        }
        let pending_tokens: Vec<[u32; 1]> =
            plan.iter().map(|&(i, ..)| [self.running[i].pending.unwrap_or(0)]).collect();
        let chunks: Vec<SeqChunk<'_>> = plan
            .iter()
            .zip(&pending_tokens)
            .map(|(&(i, from, to, logits), pending)| {
                let r = &self.running[i];
                let tokens: &[u32] =
                    if r.pending.is_some() { pending } else { &r.request.prompt[from..to] };
                SeqChunk { seq: r.seq, tokens, logits }
            })
            .collect();
        let result = batch::step(self.model.as_ref(), &mut self.cache, &chunks);
        drop(chunks);
        let outputs = match result {
            Ok(outputs) => outputs,
            Err(err) => {
                tracing::error!("engine step failed: {err}");
                let mut indices: Vec<usize> = plan.iter().map(|&(i, ..)| i).collect();
                indices.sort_unstable_by(|a, b| b.cmp(a));
                let failed: Vec<Running> =
                    indices.into_iter().map(|i| self.running.swap_remove(i)).collect();
                for r in failed {
                    let _ = r.request.events.send(Event::Failed {
                        overloaded: false,
                        message: format!("inference failed: {err}"),
                    });
                    self.release(&r);
                }
                return;
            }
        };
        let mut finished = Vec::new();
        for (&(i, from, to, _), output) in plan.iter().zip(outputs) {
            let r = &mut self.running[i];
            let decoding = r.pending.take().is_some();
            if !decoding {
                r.prefilled = to;
                self.stats.prompt_tokens.fetch_add(to - from, Ordering::Relaxed);
                if r.request.prompt_logprobs {
                    // Row j holds the logits after token from + j: it scores token from + j + 1.
                    let next = r.request.prompt.get(from + 1..).unwrap_or_default();
                    r.scored.extend(sampling::score_rows(&output.rows, next, r.scored_top));
                }
                if r.prefilled < r.request.prompt.len() {
                    continue;
                }
                if r.request.prompt_logprobs {
                    let top = r.request.params.top_logprobs;
                    let scored = r
                        .scored
                        .iter()
                        .map(|(lp, alternatives)| {
                            (*lp, alternatives[..alternatives.len().min(top)].to_vec())
                        })
                        .collect();
                    let _ = r.request.events.send(Event::Prompt(scored));
                }
                if r.request.max_tokens == 0 {
                    finished.push((i, Finish::Length));
                    continue;
                }
            }
            let Some(row) = output.rows.last() else { continue };
            if let Some(finish) = emit_next(r, row, &self.tokenizer, self.cache.max_context()) {
                finished.push((i, finish));
            }
            self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
        }
        finished.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, finish) in finished {
            let mut r = self.running.swap_remove(i);
            // Text held back as a possible stop string, or as an unfinished character, is output after all.
            let flushed = r.stops.push(&r.decoder.finish());
            let mut tail = flushed.emit;
            if !flushed.stopped {
                tail.push_str(&r.stops.finish());
            }
            if !tail.is_empty() {
                let _ = r.request.events.send(Event::Text(tail));
            }
            let _ = r.request.events.send(Event::Done {
                finish,
                prompt_tokens: r.request.prompt.len(),
                completion_tokens: r.generated.len(),
                cached_tokens: r.cached,
            });
            self.keep_prefix(&mut r);
            self.release(&r);
        }
    }

    /// Keeps a finished request's prompt as a reusable prefix (when long enough to be worth it), with its
    /// prompt scores when it was scored. A kept prefix that holds it, or all but its last few tokens, makes
    /// keeping it unnecessary; kept prefixes it holds are replaced by it.
    fn keep_prefix(&mut self, r: &mut Running) {
        let len = r.request.prompt.len().min(r.prefilled);
        if self.config.max_prefixes == 0 || len < 32 {
            return;
        }
        let scored = (r.request.prompt_logprobs && r.scored.len() >= len).then(|| {
            let mut scored = std::mem::take(&mut r.scored);
            scored.truncate(len);
            scored
        });
        let has_scores = scored.is_some();
        let scored_top = if has_scores { r.scored_top } else { 0 };
        let holds = |p: &Prefix, other_scored: bool, other_top: usize| {
            (p.scored.is_some() && p.scored_top >= other_top) || !other_scored
        };
        // A kept prefix that shares all but a few of these tokens (another option of the same question)
        // serves as well: keep that one fresh instead of filling a slot with a near copy.
        let prompt = &r.request.prompt[..len];
        if let Some(near) = self.prefixes.iter_mut().find(|p| {
            let common = p.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
            common + MIN_REUSE > len && holds(p, has_scores, scored_top)
        }) {
            near.last_used = Instant::now();
            return;
        }
        let Ok(seq) = self.cache.fork(r.seq, len) else { return };
        self.prefixes.retain(|p| {
            let covered = p.tokens.len() <= len
                && p.tokens[..] == r.request.prompt[..p.tokens.len()]
                && ((has_scores && scored_top >= p.scored_top) || p.scored.is_none());
            if covered {
                let _ = self.cache.free_sequence(p.seq);
            }
            !covered
        });
        self.prefixes.push(Prefix {
            seq,
            tokens: r.request.prompt[..len].to_vec(),
            last_used: Instant::now(),
            scored,
            scored_top,
        });
        while self.prefixes.len() > self.config.max_prefixes {
            self.evict_prefix();
        }
    }
}

/// Samples the next token from `row`, streams its text, and says whether the generation ended.
fn emit_next(
    r: &mut Running,
    row: &[f32],
    tokenizer: &Tokenizer,
    max_context: usize,
) -> Option<Finish> {
    let remaining = r
        .request
        .max_tokens
        .saturating_sub(r.generated.len())
        .min(max_context.saturating_sub(r.request.prompt.len() + r.generated.len()));
    let mask = r.request.constraint.as_mut().map(|c| c.allowed(remaining));
    let sampled =
        match r.sampler.sample_masked(row, &r.request.prompt, &r.generated, mask.as_deref()) {
            Ok(sampled) => sampled,
            Err(err) => {
                let _ = r
                    .request
                    .events
                    .send(Event::Failed { overloaded: false, message: err.to_string() });
                return Some(Finish::Stop);
            }
        };
    if let Some(constraint) = r.request.constraint.as_mut()
        && !constraint.accept(sampled.token)
    {
        let _ = r.request.events.send(Event::Failed {
            overloaded: false,
            message: "constrained decoding sampled a token outside the allowed set".to_owned(),
        });
        return Some(Finish::Stop);
    }
    r.generated.push(sampled.token);
    if tokenizer.is_eos(sampled.token) {
        return Some(Finish::Stop);
    }
    let piece = r.decoder.push(tokenizer, sampled.token).unwrap_or_default();
    let outcome = r.stops.push(&piece);
    let _ = r.request.events.send(Event::Token {
        id: sampled.token,
        text: outcome.emit,
        logprob: sampled.logprob,
        top: sampled.top,
    });
    if outcome.stopped || r.request.constraint.as_ref().is_some_and(Constraint::is_finished) {
        return Some(Finish::Stop);
    }
    if r.generated.len() >= r.request.max_tokens
        || r.request.prompt.len() + r.generated.len() >= max_context
    {
        return Some(Finish::Length);
    }
    r.pending = Some(sampled.token);
    None
}
