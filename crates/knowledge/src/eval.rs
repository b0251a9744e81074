//! Retrieval evaluation on CMRC 2018 dev (SQuAD-style JSON): paragraphs are cut into chunks of at most
//! 150 characters at 。！？；, the query is the question and the gold chunk is the one holding the
//! answer's first character. Reports R@1, R@10, MRR@10, per-query latency (p50/p99) and queries/s over
//! several threads, and ingest throughput. To measure at scale, synthetic distractor chunks can be
//! added: each is a seeded mix of clauses from random real chunks (real vocabulary and term
//! statistics, no answer-bearing whole chunk duplicated), up to a target corpus size.
//!
//! With an embedder, every chunk is also embedded (timed separately: embedding dominates ingest on a CPU)
//! and queries run hybrid, the vector list fused with the lexical ones; query latency then includes
//! embedding the query.
//!
//! [`evaluate_store`] measures any [`KnowledgeStore`] the same way through its public API (each chunk one
//! document, each query thread its own handle): the PostgreSQL path's figures. Every report carries the
//! machine's load average before and after, since on a shared machine throughput means little without it.

use std::{
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use serde::{Deserialize, Serialize};

use crate::{
    KnowledgeError, Result,
    chunk::{ChunkConfig, chunk_text},
    embed::Embedder,
    index::{ChunkIndex, ChunkRecord, Filters, Retriever, chunk_key},
    kb::{AddOptions, KnowledgeStore, SearchRequest, doc_id},
    parse::SourceDoc,
    search::{SearchOptions, hybrid_search},
    vectors::{VectorIndex, VectorMeta, VectorModel, VectorRetriever},
};

/// Called with (stage, done, total) as an evaluation runs; stages are `index`, `embed` and `query`.
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

/// One question with its gold chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalQuery {
    /// The question text.
    pub question: String,
    /// Id of the chunk holding the answer.
    pub gold: String,
}

/// A retrieval test set: chunks and queries.
#[derive(Debug, Clone, Default)]
pub struct EvalSet {
    /// Chunks to index (`chunk_id`, body).
    pub chunks: Vec<(String, String)>,
    /// Queries with gold chunk ids.
    pub queries: Vec<EvalQuery>,
}

/// Reads a SQuAD-style file (CMRC 2018) and cuts it into the chunk set described in the module docs.
pub fn load_squad(path: &Path, max_chars: usize) -> Result<EvalSet> {
    let raw = std::fs::read_to_string(path).map_err(|e| KnowledgeError::io(path, e))?;
    let json: serde_json::Value = serde_json::from_str(&raw)
        .map_err(|e| KnowledgeError::BadInput(format!("{}: {e}", path.display())))?;
    let config = ChunkConfig { max_chars, overlap_chars: 0, headings: false, parent_chars: 0 };
    let mut set = EvalSet::default();
    let articles = json["data"]
        .as_array()
        .ok_or_else(|| KnowledgeError::BadInput("no `data` array".into()))?;
    let mut paragraph = 0usize;
    for article in articles {
        for para in article["paragraphs"].as_array().into_iter().flatten() {
            let Some(context) = para["context"].as_str() else { continue };
            let chunks = chunk_text(context, &config).chunks;
            let ids: Vec<String> =
                chunks.iter().map(|c| format!("p{paragraph}:{}", c.ord)).collect();
            for qa in para["qas"].as_array().into_iter().flatten() {
                let (Some(question), Some(start)) =
                    (qa["question"].as_str(), qa["answers"][0]["answer_start"].as_u64())
                else {
                    continue;
                };
                let start = start as usize;
                let Some(gold) = chunks.iter().rposition(|c| c.start <= start) else { continue };
                set.queries
                    .push(EvalQuery { question: question.to_owned(), gold: ids[gold].clone() });
            }
            set.chunks.extend(ids.into_iter().zip(chunks.into_iter().map(|c| c.body)));
            paragraph += 1;
        }
    }
    Ok(set)
}

/// A small seeded generator (SplitMix64) so synthetic corpora are reproducible without a dependency.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Adds distractor chunks until the set has `total` chunks. Each is 60–150 characters of jieba words
/// drawn at random from the real chunks' word stream (so words keep their corpus frequencies and
/// posting lists grow as in a 26× larger corpus of the same domain), with a `，` every few words and
/// a `。` at the end. Whole clauses are never copied, so a distractor cannot contain an answer passage.
pub fn add_distractors(set: &mut EvalSet, total: usize, seed: u64) {
    let words: Vec<&str> = set
        .chunks
        .iter()
        .flat_map(|(_, body)| crate::tokenize::jieba().cut(body, true).into_iter().map(|t| t.word))
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    if words.is_empty() {
        return;
    }
    let mut rng = SplitMix(seed);
    let mut synthetic = Vec::new();
    for n in 0..total.saturating_sub(set.chunks.len()) {
        let target = 60 + rng.below(91);
        let mut body = String::new();
        let mut chars = 0;
        while chars < target {
            let word = words[rng.below(words.len())];
            body.push_str(word);
            chars += word.chars().count();
            if rng.below(6) == 0 {
                body.push('，');
                chars += 1;
            }
        }
        body.push('。');
        synthetic.push((format!("synthetic:{n}"), body));
    }
    set.chunks.extend(synthetic);
}

/// What an evaluation run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Chunks indexed (real plus synthetic).
    pub chunks: usize,
    /// Queries asked.
    pub queries: usize,
    /// Share of queries whose gold chunk is ranked first.
    pub recall_at_1: f64,
    /// Share of queries whose gold chunk is in the top 10.
    pub recall_at_10: f64,
    /// Mean reciprocal rank of the gold chunk, 0 beyond rank 10.
    pub mrr_at_10: f64,
    /// Median query latency in milliseconds.
    pub latency_p50_ms: f64,
    /// 99th-percentile query latency in milliseconds.
    pub latency_p99_ms: f64,
    /// Queries per second with `threads` threads.
    pub queries_per_s: f64,
    /// Process CPU time per query in milliseconds (Linux; 0 elsewhere): unlike queries/s it hardly
    /// depends on what else the machine runs, so `1000 * cores / cpu_ms_per_query` estimates the
    /// throughput of idle cores.
    #[serde(default)]
    pub cpu_ms_per_query: f64,
    /// Query threads.
    pub threads: usize,
    /// UTF-8 megabytes of chunk text indexed.
    pub ingest_mb: f64,
    /// Seconds to tokenize, index and commit them.
    pub ingest_s: f64,
    /// Ingest throughput.
    pub ingest_mb_per_s: f64,
    /// The embedding model, when the run was hybrid with vectors.
    #[serde(default)]
    pub embed_model: Option<String>,
    /// Seconds to embed every chunk (0 without vectors).
    #[serde(default)]
    pub embed_s: f64,
    /// Chunks embedded per second.
    #[serde(default)]
    pub embed_chunks_per_s: f64,
    /// How queries were run.
    pub options: SearchOptions,
    /// The machine's 1-minute load average before and after the run (Linux; 0 elsewhere): with fewer
    /// cores than that, other work shared the CPU and the throughput figures are low.
    #[serde(default)]
    pub load_average: (f64, f64),
    /// CPU cores the machine has.
    #[serde(default)]
    pub cores: usize,
    /// What was measured: `embedded` (tantivy, HNSW) or the store's description (`postgres`), whose
    /// CPU per query counts this process only, not the database server's.
    #[serde(default)]
    pub backend: String,
}

/// The 1-minute load average (Linux `/proc/loadavg`; 0 elsewhere).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Embeds every chunk of `set` into an in-memory vector index; returns it and the seconds taken.
pub fn build_vectors(
    set: &EvalSet,
    embedder: &dyn Embedder,
    progress: Progress<'_>,
) -> Result<(VectorIndex, f64)> {
    let mut index = VectorIndex::in_memory()?;
    index.set_model(VectorModel {
        name: embedder.name().to_owned(),
        dim: embedder.dim(),
        path: None,
    })?;
    let started = Instant::now();
    let mut items = Vec::with_capacity(set.chunks.len());
    for batch in set.chunks.chunks(64) {
        let texts: Vec<&str> = batch.iter().map(|(_, body)| body.as_str()).collect();
        for ((id, _), vector) in batch.iter().zip(embedder.embed(&texts)?) {
            items.push((chunk_key(id), vector));
        }
        progress("embed", items.len(), set.chunks.len());
    }
    let meta =
        VectorMeta { doc_id: "eval".into(), tenant: "default".into(), ..VectorMeta::default() };
    index.put_doc(&meta, &items)?;
    Ok((index, started.elapsed().as_secs_f64()))
}

/// Indexes `set` into `dir` (which should be empty) and measures ingest.
pub fn build_index(set: &EvalSet, dir: &Path, threads: usize) -> Result<(ChunkIndex, f64, f64)> {
    let index = ChunkIndex::open(dir)?;
    // Load the jieba dictionaries first: a one-off start-up cost, not ingest throughput.
    crate::tokenize::jieba();
    let started = Instant::now();
    let mut bytes = 0usize;
    let mut writer = index.writer(threads)?;
    for (id, body) in &set.chunks {
        bytes += body.len();
        let record = ChunkRecord {
            chunk_id: id.clone(),
            doc_id: id.split(':').next().unwrap_or_default().to_owned(),
            version: 1,
            title: String::new(),
            heading: String::new(),
            body: body.clone(),
            start: 0,
            end: body.chars().count() as u64,
            published_at: None,
            tags: Vec::new(),
            tenant: "default".to_owned(),
        };
        writer.add(&record, body)?;
    }
    writer.commit()?;
    writer.finish()?;
    // One segment, as a bulk-loaded base should be served (see `ChunkIndex::optimize`); counted in
    // ingest time.
    index.optimize()?;
    let seconds = started.elapsed().as_secs_f64();
    Ok((index, bytes as f64 / 1e6, seconds))
}

/// One query's index, the gold chunk's rank (0-based, within the top 10) and latency in ms.
type QueryOutcome = (usize, Option<usize>, f64);

/// A query run's gold ranks (0-based, within the top 10), latencies (ms) and wall seconds.
type Timings = (Vec<Option<usize>>, Vec<f64>, f64);

/// Runs every query of `set` on `threads` threads: each thread makes its own searcher with `make` and
/// asks `search` for the gold chunk's rank. Returns the ranks, the latencies (ms) and the wall seconds.
fn run_timed<S>(
    set: &EvalSet,
    threads: usize,
    progress: Progress<'_>,
    make: &(dyn Fn() -> Result<S> + Sync),
    search: &(dyn Fn(&mut S, &EvalQuery) -> Result<Option<usize>> + Sync),
) -> Result<Timings> {
    let threads = threads.max(1);
    let done = AtomicUsize::new(0);
    let done = &done;
    let started = Instant::now();
    let results: Vec<Result<Vec<QueryOutcome>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut searcher = make()?;
                    let mut out = Vec::new();
                    for (i, q) in set.queries.iter().enumerate().skip(t).step_by(threads) {
                        let began = Instant::now();
                        let rank = search(&mut searcher, q)?;
                        out.push((i, rank, began.elapsed().as_secs_f64() * 1e3));
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_multiple_of(64) || n == set.queries.len() {
                            progress("query", n, set.queries.len());
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(KnowledgeError::BadInput("query thread panicked".into()))
                })
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut ranks = vec![None; set.queries.len()];
    let mut latencies = Vec::with_capacity(set.queries.len());
    for part in results {
        for (i, rank, ms) in part? {
            ranks[i] = rank;
            latencies.push(ms);
        }
    }
    Ok((ranks, latencies, seconds))
}

/// Runs every query of `set` against `index` (and `vectors`, when given) on `threads` threads.
pub fn run_queries(
    index: &ChunkIndex,
    vectors: Option<VectorRetriever<'_>>,
    set: &EvalSet,
    options: &SearchOptions,
    threads: usize,
    progress: Progress<'_>,
) -> Result<Timings> {
    let searcher = index.searcher();
    let vectors = vectors.as_ref();
    run_timed(set, threads, progress, &|| Ok(searcher.clone()), &|searcher, q| {
        let extra: Vec<(&dyn Retriever, f32)> =
            vectors.map(|v| (v as &dyn Retriever, options.vector_weight)).into_iter().collect();
        let hits = hybrid_search(searcher, &extra, &q.question, &Filters::default(), 10, options)?;
        Ok(hits.iter().position(|h| h.chunk.chunk_id == q.gold))
    })
}

/// User plus system CPU seconds this process has used, from `/proc/self/stat` (Linux; `None` elsewhere).
/// Ticks are taken as 1/100 s, the `USER_HZ` of every mainstream Linux build.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The `q`-quantile (0..=1) of `values` (sorted in place), nearest rank.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Full evaluation: index `set` in `dir` (and embed it when an embedder is given), run the queries,
/// compute the metrics.
pub fn evaluate(
    set: &EvalSet,
    dir: &Path,
    options: &SearchOptions,
    threads: usize,
    embedder: Option<&dyn Embedder>,
    progress: Progress<'_>,
) -> Result<EvalReport> {
    let load_before = load_average();
    progress("index", 0, set.chunks.len());
    let (index, ingest_mb, ingest_s) = build_index(set, dir, threads)?;
    progress("index", set.chunks.len(), set.chunks.len());
    let (vectors, embed_s) = match embedder {
        Some(embedder) => {
            let (vectors, seconds) = build_vectors(set, embedder, progress)?;
            (Some((vectors, embedder)), seconds)
        }
        None => (None, 0.0),
    };
    let retriever = vectors
        .as_ref()
        .map(|(index, embedder)| VectorRetriever { index: index.vectors(), embedder: *embedder });
    let mut report = measure(set, threads, options, progress, &|queries, progress| {
        run_queries(&index, retriever, queries, options, threads, progress)
    })?;
    report.ingest_mb = ingest_mb;
    report.ingest_s = ingest_s;
    report.ingest_mb_per_s = ingest_mb / ingest_s.max(1e-9);
    report.embed_model = embedder.map(|e| e.name().to_owned());
    report.embed_s = embed_s;
    report.embed_chunks_per_s = if embed_s > 0.0 { set.chunks.len() as f64 / embed_s } else { 0.0 };
    report.load_average.0 = load_before;
    report.backend = "embedded".to_owned();
    Ok(report)
}

/// Runs the queries of `set` with `run`: the first 200 once untimed (page cache, dictionaries,
/// connections warm, as in a long-running server), then all of them timed; the report's quality,
/// latency, throughput, CPU and load fields (ingest fields are the caller's).
fn measure(
    set: &EvalSet,
    threads: usize,
    options: &SearchOptions,
    progress: Progress<'_>,
    run: &dyn Fn(&EvalSet, Progress<'_>) -> Result<Timings>,
) -> Result<EvalReport> {
    let silent = |_: &str, _: usize, _: usize| {};
    run(
        &EvalSet { chunks: Vec::new(), queries: set.queries.iter().take(200).cloned().collect() },
        &silent,
    )?;
    let load_before = load_average();
    let cpu_before = process_cpu_seconds();
    let (ranks, mut latencies, seconds) = run(set, progress)?;
    let cpu_s = match (cpu_before, process_cpu_seconds()) {
        (Some(before), Some(after)) => after - before,
        _ => 0.0,
    };
    let n = ranks.len().max(1) as f64;
    let hit = |k: usize| ranks.iter().filter(|r| r.is_some_and(|r| r < k)).count() as f64 / n;
    let mrr = ranks.iter().map(|r| r.map_or(0.0, |r| 1.0 / (r as f64 + 1.0))).sum::<f64>() / n;
    Ok(EvalReport {
        chunks: set.chunks.len(),
        queries: ranks.len(),
        recall_at_1: hit(1),
        recall_at_10: hit(10),
        mrr_at_10: mrr,
        latency_p50_ms: quantile(&mut latencies, 0.5),
        latency_p99_ms: quantile(&mut latencies, 0.99),
        queries_per_s: ranks.len() as f64 / seconds.max(1e-9),
        cpu_ms_per_query: cpu_s * 1e3 / n,
        threads,
        ingest_mb: 0.0,
        ingest_s: 0.0,
        ingest_mb_per_s: 0.0,
        embed_model: None,
        embed_s: 0.0,
        embed_chunks_per_s: 0.0,
        options: options.clone(),
        load_average: (load_before, load_average()),
        cores: cores(),
        backend: String::new(),
    })
}

/// Evaluates a [`KnowledgeStore`] through its public API: `store` (which should be empty) ingests every
/// chunk as one document (source = chunk id), in batches, timed as ingest; then `threads` threads, each
/// with its own handle from `open` (a connection of its own, for PostgreSQL), run the queries. A hit is
/// a result from the gold chunk's document. `backend` names what was measured in the report.
pub fn evaluate_store(
    set: &EvalSet,
    store: &mut dyn KnowledgeStore,
    open: &(dyn Fn() -> Result<Box<dyn KnowledgeStore + Send>> + Sync),
    options: &SearchOptions,
    threads: usize,
    backend: &str,
    progress: Progress<'_>,
) -> Result<EvalReport> {
    let load_before = load_average();
    crate::tokenize::jieba();
    let started = Instant::now();
    let mut bytes = 0usize;
    for (n, batch) in set.chunks.chunks(1_000).enumerate() {
        let docs: Vec<SourceDoc> = batch
            .iter()
            .map(|(id, body)| {
                bytes += body.len();
                SourceDoc { source: id.clone(), text: body.clone(), ..SourceDoc::default() }
            })
            .collect();
        store.add_docs(docs, &AddOptions { threads, ..AddOptions::default() })?;
        progress("index", (n * 1_000 + batch.len()).min(set.chunks.len()), set.chunks.len());
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let ingest_mb = bytes as f64 / 1e6;
    let mut report = measure(set, threads, options, progress, &|queries, progress| {
        run_timed(queries, threads, progress, open, &|store, q| {
            let request = SearchRequest {
                query: q.question.clone(),
                k: 10,
                filters: Filters::default(),
                options: options.clone(),
            };
            let gold = doc_id(&q.gold);
            Ok(store.search(&request)?.iter().position(|h| h.chunk.doc_id == gold))
        })
    })?;
    report.ingest_mb = ingest_mb;
    report.ingest_s = ingest_s;
    report.ingest_mb_per_s = ingest_mb / ingest_s.max(1e-9);
    report.load_average.0 = load_before;
    report.backend = backend.to_owned();
    Ok(report)
}
