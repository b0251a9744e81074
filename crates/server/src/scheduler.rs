//! Continuous batching for the in-process engine.
//!
//! One thread owns the model and its paged KV cache. Every step it admits waiting requests while the cache
//! budget allows, gives each running sequence one decode token, fills the rest of the step's token budget
//! with prompt chunks (chunked prefill), runs one batched forward pass, samples, and streams each new piece
//! of text to its request's channel. A request whose client went away (its channel closed) is dropped and its
//! cache freed at the next step. Finished prompts are kept as reusable prefixes: a new prompt that starts
//! with a cached one (a long shared system prompt) forks its blocks and prefills only the rest.

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
    /// Cached prompt prefixes kept for reuse.
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

/// What a request hears back, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Prompt scoring: for each prompt token, its log-probability (`None` for the first) and alternatives.
    Prompt(Vec<(Option<f32>, Vec<TokenLogprob>)>),
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
    prompt_rows: Vec<Vec<f32>>,
}

struct Prefix {
    seq: SeqId,
    tokens: Vec<u32>,
    last_used: Instant,
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

    /// Admits waiting requests in arrival order while the cache can hold their whole budget.
    fn admit(&mut self) {
        while let Some(request) = self.waiting.front() {
            if request.arrived.elapsed() > self.config.queue_timeout {
                if let Some(request) = self.waiting.pop_front() {
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
                if let Some(request) = self.waiting.pop_front() {
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
            // Cached prefixes are a cache: they make room for admitted work.
            while self.committed + budget + self.prefix_tokens() > self.capacity()
                && self.evict_prefix()
            {}
            let Some(request) = self.waiting.pop_front() else { return };
            self.start(request, budget);
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

    fn start(&mut self, request: GenRequest, budget: usize) {
        let sampler = match Sampler::new(request.params.clone()) {
            Ok(sampler) => sampler,
            Err(err) => {
                let _ = request
                    .events
                    .send(Event::Failed { overloaded: false, message: err.to_string() });
                return;
            }
        };
        // Reuse the longest cached prefix, leaving at least the last prompt token to compute (it yields the
        // first logits). Prompt scoring needs every row, so it never reuses.
        let mut seq = None;
        let mut cached = 0;
        if !request.prompt_logprobs {
            let best = self
                .prefixes
                .iter_mut()
                .map(|p| {
                    let common =
                        p.tokens.iter().zip(&request.prompt).take_while(|(a, b)| a == b).count();
                    (common.min(request.prompt.len().saturating_sub(1)), p)
                })
                .max_by_key(|(common, _)| *common);
            if let Some((common, prefix)) = best
                && common >= 16
                && let Ok(forked) = self.cache.fork(prefix.seq, common)
            {
                prefix.last_used = Instant::now();
                seq = Some(forked);
                cached = common;
            }
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
            prompt_rows: Vec::new(),
        });
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
                    r.prompt_rows.extend(output.rows.iter().cloned());
                }
                if r.prefilled < r.request.prompt.len() {
                    continue;
                }
                if r.request.prompt_logprobs {
                    let scored = score_prompt(
                        &r.request.prompt,
                        &r.prompt_rows,
                        r.request.params.top_logprobs,
                    );
                    let _ = r.request.events.send(Event::Prompt(scored));
                    r.prompt_rows = Vec::new();
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
            self.keep_prefix(&r);
            self.release(&r);
        }
    }

    /// Keeps a finished request's prompt as a reusable prefix (when long enough to be worth it).
    fn keep_prefix(&mut self, r: &Running) {
        let len = r.request.prompt.len().min(r.prefilled);
        if self.config.max_prefixes == 0 || len < 32 {
            return;
        }
        if self
            .prefixes
            .iter()
            .any(|p| p.tokens.len() >= len && p.tokens[..len] == r.request.prompt[..len])
        {
            return;
        }
        let Ok(seq) = self.cache.fork(r.seq, len) else { return };
        self.prefixes.retain(|p| {
            let covered =
                p.tokens.len() <= len && p.tokens[..] == r.request.prompt[..p.tokens.len()];
            if covered {
                let _ = self.cache.free_sequence(p.seq);
            }
            !covered
        });
        self.prefixes.push(Prefix {
            seq,
            tokens: r.request.prompt[..len].to_vec(),
            last_used: Instant::now(),
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

fn score_prompt(
    prompt: &[u32],
    rows: &[Vec<f32>],
    top_n: usize,
) -> Vec<(Option<f32>, Vec<TokenLogprob>)> {
    let mut scored = vec![(None, Vec::new())];
    for (token, row) in prompt.iter().skip(1).zip(rows) {
        let logprobs = sampling::log_softmax(row);
        let lp = logprobs.get(*token as usize).copied();
        scored.push((lp, sampling::top_logprobs(&logprobs, top_n)));
    }
    scored.truncate(prompt.len());
    scored
}
