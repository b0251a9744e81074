//! `finllm kb`: the knowledge base from the command line — add, remove, list and search documents in
//! `<data_dir>/kb` (or, with `--database`, in PostgreSQL with pgvector, shared by several processes),
//! show statistics, evaluate retrieval on CMRC 2018, and clean a corpus stand-alone.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use knowledge::{
    AddOptions, BertEmbedder, KnowledgeBase, KnowledgeStore, SearchOptions, SearchRequest,
    clean::{CleanConfig, clean_corpus, report_html},
    eval::{self, EvalReport},
    fusion::Fuser,
    index::Filters,
    parse::{SourceDoc, format_date, parse_date, parse_file, unix_now},
    pg::PgKnowledgeBase,
    search::Freshness,
};

use crate::config::Config;

/// Arguments of `finllm kb`.
#[derive(Debug, clap::Args)]
pub struct KbArgs {
    #[command(subcommand)]
    command: KbCommand,
    /// Keep the knowledge base in PostgreSQL with pgvector (postgres://user:pass@host:port/db) instead
    /// of <data_dir>/kb, so several finllm processes share it (default: config key `knowledge.database`)
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// PostgreSQL schema holding the knowledge base, with --database (default: config key
    /// `knowledge.schema`, finllm_kb)
    #[arg(long, global = true, value_name = "SCHEMA")]
    schema: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum KbCommand {
    /// Ingest files and folders (txt, md, html, docx, pdf, csv, json, jsonl); unchanged documents are skipped
    Add(AddArgs),
    /// Delete a document and its chunks
    Rm {
        /// Document id, as `finllm kb ls` shows it
        id: String,
    },
    /// List documents
    Ls {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Search: hybrid BM25 (jieba words + character bigrams) and vectors when a model is attached, with filters
    Search(SearchArgs),
    /// Documents, chunks, characters, tenants and disk use
    Stats {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Clean a corpus stand-alone (file or folder in, JSONL out) with a per-step JSON + HTML report
    Clean(CleanArgs),
    /// Measure retrieval on CMRC 2018 dev: R@1, R@10, MRR@10, latency, queries/s, ingest MB/s
    Eval(EvalArgs),
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// Files or folders (folders are walked recursively; hidden entries skipped)
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Tag every document (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Tenant for documents that name none
    #[arg(long)]
    tenant: Option<String>,
    /// Publication date (YYYY-MM-DD or RFC 3339) for documents that give none
    #[arg(long, value_name = "DATE", value_parser = date_arg)]
    published_at: Option<i64>,
    /// Delete stored documents under the given folders whose files are gone
    #[arg(long)]
    prune: bool,
    /// Attach a BERT-family embedding model folder (config.json, model.safetensors, tokenizer.json):
    /// chunks get vectors and searches fuse them; the model is remembered for later commands
    #[arg(long, value_name = "DIR", conflicts_with = "embed_upstream")]
    embed_model: Option<PathBuf>,
    /// Embed with an OpenAI-compatible endpoint instead (its base URL, e.g. http://host:8000/v1; the key,
    /// if it needs one, is config key `knowledge.embed_api_key`); remembered like --embed-model
    #[arg(long, value_name = "URL", requires = "embed_name")]
    embed_upstream: Option<String>,
    /// The model name to ask the --embed-upstream endpoint for
    #[arg(long, value_name = "MODEL", requires = "embed_upstream")]
    embed_name: Option<String>,
    /// Print the ingest report as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SearchArgs {
    /// The query
    query: String,
    /// How many results
    #[arg(long, short, default_value_t = 10)]
    k: usize,
    /// Only chunks with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only chunks published on or after this date (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE", value_parser = date_arg)]
    since: Option<i64>,
    /// Only chunks published before this date
    #[arg(long, value_name = "DATE", value_parser = date_arg)]
    until: Option<i64>,
    /// Only this tenant's chunks
    #[arg(long)]
    tenant: Option<String>,
    /// Boost recent chunks: extra weight for a chunk published today (0 = off)
    #[arg(long, default_value_t = 0.0)]
    freshness: f64,
    /// Days after which the freshness boost halves
    #[arg(long, default_value_t = 30.0)]
    half_life_days: f64,
    #[command(flatten)]
    search: SearchFlags,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct CleanArgs {
    /// Input file or folder (any format `kb add` reads)
    input: PathBuf,
    /// Output JSONL file (`source`, `title`, `text`, …); the report goes next to it as .report.json/.html
    output: PathBuf,
    /// Pipeline settings as JSON (fields of knowledge::clean::CleanConfig; missing ones keep defaults)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Convert traditional to simplified Chinese
    #[arg(long)]
    simplified: bool,
    /// Keep PII (default: scrub it)
    #[arg(long)]
    keep_pii: bool,
    /// Keep only these languages (zh, en, other), comma-separated
    #[arg(long, value_delimiter = ',')]
    languages: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// The SQuAD-style file (cmrc2018_dev.json), or the folder holding it
    #[arg(long, value_name = "PATH", env = "FINLLM_KB_EVAL_DATA")]
    data: PathBuf,
    /// Most characters per chunk
    #[arg(long, default_value_t = 150)]
    chunk_chars: usize,
    /// Grow the corpus to this many chunks with seeded synthetic distractors (0 = real chunks only)
    #[arg(long, default_value_t = 0)]
    scale_to: usize,
    /// Seed for the distractors
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Query and indexing threads
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also embed every chunk with this BERT-family model folder and fuse the vector list (hybrid)
    #[arg(long, value_name = "DIR", env = "FINLLM_EMBED_MODEL")]
    embed_model: Option<PathBuf>,
    #[command(flatten)]
    search: SearchFlags,
    /// Write the report as JSON here too
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SearchFlags {
    /// Fusion weight of the jieba (word) list
    #[arg(long, default_value_t = 1.0)]
    jieba_weight: f32,
    /// Fusion weight of the character-bigram list
    #[arg(long, default_value_t = 1.0)]
    bigram_weight: f32,
    /// Fusion weight of the vector list (when an embedding model is attached)
    #[arg(long, default_value_t = 1.0)]
    vector_weight: f32,
    /// Candidates per list before fusion
    #[arg(long, default_value_t = 50)]
    depth: usize,
    /// RRF rank constant
    #[arg(long, default_value_t = 60.0)]
    rrf_k: f32,
    /// Keep interrogative words (什么, 哪一年…) in the lexical query
    #[arg(long)]
    keep_question_words: bool,
    /// Leave out lexical query terms found in more than this share of the chunks (1 keeps all)
    #[arg(long, default_value_t = 0.2)]
    common_term_share: f32,
    /// Return each matching chunk's parent (the larger span of its section around it) instead
    #[arg(long)]
    parents: bool,
}

impl SearchFlags {
    fn options(&self) -> SearchOptions {
        SearchOptions {
            jieba_weight: self.jieba_weight,
            bigram_weight: self.bigram_weight,
            vector_weight: self.vector_weight,
            depth: self.depth,
            fuser: Fuser { k: self.rrf_k },
            freshness: None,
            strip_question_words: !self.keep_question_words,
            common_term_share: self.common_term_share,
            parents: self.parents,
        }
    }
}

/// Runs a `finllm kb` command.
pub fn run(args: &KbArgs, config: &Config) -> anyhow::Result<()> {
    if let Some(url) = args.database.as_ref().or(config.knowledge_database.as_ref()) {
        let schema = args.schema.as_deref().unwrap_or(&config.knowledge_schema);
        return run_postgres(args, url, schema, config);
    }
    match &args.command {
        KbCommand::Eval(a) => eval_command(a, &config.data_dir, None),
        KbCommand::Clean(a) => clean_command(a),
        KbCommand::Add(a) => add_command(a, open(config)?),
        KbCommand::Rm { id } => {
            open(config)?.remove(id)?;
            writeln!(std::io::stdout().lock(), "removed {id}")?;
            Ok(())
        }
        KbCommand::Ls { json } => ls_command(&open(config)?, *json),
        KbCommand::Search(a) => search_command(a, &open(config)?),
        KbCommand::Stats { json } => print_stats(&open(config)?.stats()?, *json),
    }
}

/// `finllm kb --database URL ...`: the same commands on the PostgreSQL knowledge base.
fn run_postgres(args: &KbArgs, url: &str, schema: &str, config: &Config) -> anyhow::Result<()> {
    let open = || -> anyhow::Result<PgKnowledgeBase> {
        let mut kb = PgKnowledgeBase::connect(url, schema).with_context(|| {
            format!("opening the knowledge base in PostgreSQL (schema {schema})")
        })?;
        kb.embed_api_key = config.knowledge_embed_api_key.clone();
        kb.load_recorded_embedder().context(
            "loading the knowledge base's embedding model (attach another with `finllm kb add --embed-model DIR`)",
        )?;
        Ok(kb)
    };
    match &args.command {
        KbCommand::Eval(a) => eval_command(a, &config.data_dir, Some((url, schema))),
        KbCommand::Clean(a) => clean_command(a),
        KbCommand::Add(a) => {
            let mut kb = open()?;
            if let Some(model) = &a.embed_model {
                kb.load_embedder(model)
                    .with_context(|| format!("loading the embedding model {}", model.display()))?;
            }
            if let (Some(url), Some(name)) = (&a.embed_upstream, &a.embed_name) {
                kb.attach_upstream_embedder(url, name, config.knowledge_embed_api_key.clone())
                    .with_context(|| format!("connecting to the embedding endpoint {url}"))?;
            }
            let mut skipped = Vec::new();
            let files = knowledge::kb::list_files(&a.paths, &mut skipped);
            let mut docs = Vec::new();
            for file in &files {
                match knowledge::kb::read_source(file) {
                    Ok(parsed) => docs.extend(parsed),
                    Err(reason) => skipped
                        .push(knowledge::kb::Skipped { path: file.display().to_string(), reason }),
                }
            }
            let mut seen: std::collections::HashSet<String> =
                docs.iter().map(|d| d.source.clone()).collect();
            seen.extend(
                skipped.iter().map(|s| knowledge::kb::canonical_display(Path::new(&s.path))),
            );
            let mut report = kb.add_docs(docs, &add_options(a))?;
            report.files = files.len();
            report.skipped = skipped;
            if a.prune {
                for doc_id in knowledge::kb::gone(&kb.list()?, &a.paths, &seen) {
                    kb.remove(&doc_id)?;
                    report.deleted.push(doc_id);
                }
            }
            print_ingest(&report, a.json)
        }
        KbCommand::Rm { id } => {
            open()?.remove(id)?;
            writeln!(std::io::stdout().lock(), "removed {id}")?;
            Ok(())
        }
        KbCommand::Ls { json } => ls_command(&open()?, *json),
        KbCommand::Search(a) => search_command(a, &open()?),
        KbCommand::Stats { json } => print_stats(&open()?.stats()?, *json),
    }
}

fn add_options(args: &AddArgs) -> AddOptions {
    AddOptions {
        tags: args.tags.clone(),
        tenant: args.tenant.clone(),
        published_at: args.published_at,
        prune: args.prune,
        threads: 2,
    }
}

/// Opens the knowledge base, with the embedding model its vectors came from, if any.
fn open(config: &Config) -> anyhow::Result<KnowledgeBase> {
    let dir = config.data_dir.join("kb");
    let mut kb = KnowledgeBase::open(&dir)
        .with_context(|| format!("opening the knowledge base in {}", dir.display()))?;
    kb.embed_api_key = config.knowledge_embed_api_key.clone();
    kb.load_recorded_embedder().context(
        "loading the knowledge base's embedding model (attach another with `finllm kb add --embed-model DIR`)",
    )?;
    Ok(kb)
}

/// Clap value parser for dates, so a bad date is a usage error (exit code 2).
fn date_arg(value: &str) -> Result<i64, String> {
    parse_date(value)
        .ok_or_else(|| format!("`{value}` is not YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339"))
}

fn progress_bar(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {msg} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what);
    bar
}

fn add_command(args: &AddArgs, mut kb: KnowledgeBase) -> anyhow::Result<()> {
    let options = add_options(args);
    let attached = match (&args.embed_model, &args.embed_upstream, &args.embed_name) {
        (Some(model), _, _) => Some((
            kb.load_embedder(model)
                .with_context(|| format!("loading the embedding model {}", model.display()))?,
            model.display().to_string(),
        )),
        (None, Some(url), Some(name)) => Some((
            kb.attach_upstream_embedder(url, name, kb.embed_api_key.clone())
                .with_context(|| format!("connecting to the embedding endpoint {url}"))?,
            format!("{name} at {url}"),
        )),
        _ => None,
    };
    if let Some((changed, model)) = attached {
        let bar = progress_bar(0, "embed");
        let embedded = kb.embed_missing(&mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        if changed || embedded > 0 {
            tracing::info!(embedded, "embedded the stored chunks with {model}");
        }
    }
    let bar = progress_bar(0, "ingest");
    let report = kb.add(&args.paths, &options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    print_ingest(&report, args.json)
}

fn print_ingest(report: &knowledge::IngestReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{} files: {} added, {} updated, {} unchanged, {} deleted, {} skipped; {} chunks, {:.2} MB in {:.2} s",
            report.files,
            report.added.len(),
            report.updated.len(),
            report.unchanged,
            report.deleted.len(),
            report.skipped.len(),
            report.chunks,
            report.bytes as f64 / 1e6,
            report.seconds
        )?;
        for skipped in &report.skipped {
            writeln!(out, "skipped {}: {}", skipped.path, skipped.reason)?;
        }
    }
    Ok(())
}

fn ls_command(kb: &dyn KnowledgeStore, json: bool) -> anyhow::Result<()> {
    let docs = kb.list()?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &docs)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<18} {:>3} {:>6} {:<10} {:<12} TITLE / SOURCE",
        "ID", "VER", "CHUNKS", "TENANT", "PUBLISHED"
    )?;
    for d in docs {
        let published = d.published_at.map(format_date).unwrap_or_default();
        writeln!(
            out,
            "{:<18} {:>3} {:>6} {:<10} {:<12} {} ({})",
            d.doc_id, d.version, d.chunks, d.tenant, published, d.title, d.source
        )?;
    }
    Ok(())
}

fn search_command(args: &SearchArgs, kb: &dyn KnowledgeStore) -> anyhow::Result<()> {
    let mut options = args.search.options();
    if args.freshness > 0.0 {
        options.freshness = Some(Freshness {
            weight: args.freshness,
            half_life_days: args.half_life_days,
            now: unix_now(),
        });
    }
    let request = SearchRequest {
        query: args.query.clone(),
        k: args.k,
        filters: Filters {
            tenant: args.tenant.clone(),
            tags: args.tags.clone(),
            since: args.since,
            until: args.until,
        },
        options,
    };
    let hits = kb.search(&request)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &hits)?;
        writeln!(out)?;
        return Ok(());
    }
    for (rank, hit) in hits.iter().enumerate() {
        let c = &hit.chunk;
        writeln!(
            out,
            "{}. [{:.4}] {} v{} chars {}..{} — {}",
            rank + 1,
            hit.score,
            c.doc_id,
            c.version,
            c.start,
            c.end,
            c.title
        )?;
        if !c.heading.is_empty() {
            writeln!(out, "   § {}", c.heading)?;
        }
        writeln!(out, "   {}", c.body.replace('\n', " "))?;
    }
    if hits.is_empty() {
        writeln!(out, "no results")?;
    }
    Ok(())
}

fn print_stats(stats: &knowledge::kb::KbStats, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &stats)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "documents  {}", stats.documents)?;
    writeln!(out, "chunks     {}", stats.chunks)?;
    writeln!(out, "characters {}", stats.chars)?;
    writeln!(out, "disk       {:.2} MB", stats.disk_bytes as f64 / 1e6)?;
    match &stats.vector_model {
        Some(model) => {
            writeln!(out, "vectors    {} ({}, dim {})", stats.vectors, model.name, model.dim)?;
        }
        None => {
            writeln!(
                out,
                "vectors    none (lexical only; attach a model with kb add --embed-model)"
            )?;
        }
    }
    for (tenant, n) in &stats.tenants {
        writeln!(out, "tenant     {tenant}: {n} documents")?;
    }
    Ok(())
}

fn clean_command(args: &CleanArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => CleanConfig::default(),
    };
    config.to_simplified |= args.simplified;
    if args.keep_pii {
        config.scrub_pii = false;
    }
    if !args.languages.is_empty() {
        config.languages.clone_from(&args.languages);
    }
    let (docs, skipped) = read_corpus(&args.input)?;
    let bar = progress_bar(1, "clean");
    let (kept, report) = clean_corpus(docs, &config);
    bar.finish_and_clear();
    let mut jsonl = String::new();
    for doc in &kept {
        jsonl.push_str(&serde_json::to_string(doc)?);
        jsonl.push('\n');
    }
    std::fs::write(&args.output, jsonl)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let stem = args.output.with_extension("");
    let json_path = PathBuf::from(format!("{}.report.json", stem.display()));
    let html_path = PathBuf::from(format!("{}.report.html", stem.display()));
    let full = serde_json::json!({ "report": report, "skipped_files": skipped, "config": config });
    write_json(&json_path, &full)?;
    std::fs::write(&html_path, report_html(&report))
        .with_context(|| format!("writing {}", html_path.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} documents in, {} kept -> {}",
        report.docs_in,
        report.docs_out,
        args.output.display()
    )?;
    for step in &report.steps {
        writeln!(
            out,
            "  {:<34} in {:>6}  modified {:>6}  dropped {:>6}",
            step.step, step.docs_in, step.modified, step.dropped
        )?;
    }
    for (path, reason) in &skipped {
        writeln!(out, "  skipped {path}: {reason}")?;
    }
    writeln!(out, "report: {} and {}", json_path.display(), html_path.display())?;
    Ok(())
}

/// A file `kb clean` could not read, and why.
type SkippedFile = (String, String);

/// Reads every document under `input` with the ingest parsers; unreadable files are listed, not fatal.
fn read_corpus(input: &Path) -> anyhow::Result<(Vec<SourceDoc>, Vec<SkippedFile>)> {
    let mut files = Vec::new();
    if input.is_dir() {
        let mut stack = vec![input.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let path = entry?.path();
                if path.is_dir() { stack.push(path) } else { files.push(path) }
            }
        }
        files.sort();
    } else if input.is_file() {
        files.push(input.to_path_buf());
    } else {
        anyhow::bail!("{}: no such file or directory", input.display());
    }
    let mut docs = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        match std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| parse_file(&file, &bytes))
        {
            Ok((parsed, _)) => docs.extend(parsed),
            Err(reason) => skipped.push((file.display().to_string(), reason)),
        }
    }
    Ok((docs, skipped))
}

/// `finllm kb eval`: on the embedded index in a scratch folder of the data directory, or, with
/// `postgres` (URL, schema), on the PostgreSQL knowledge base in the scratch schema `<schema>_eval`
/// (dropped before and after; the knowledge base itself is not touched).
fn eval_command(
    args: &EvalArgs,
    data_dir: &Path,
    postgres: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let file =
        if args.data.is_dir() { args.data.join("cmrc2018_dev.json") } else { args.data.clone() };
    let mut set = eval::load_squad(&file, args.chunk_chars)
        .with_context(|| format!("reading {}", file.display()))?;
    let real = set.chunks.len();
    if args.scale_to > real {
        eval::add_distractors(&mut set, args.scale_to, args.seed);
    }
    tracing::info!(chunks = set.chunks.len(), real, queries = set.queries.len(), "indexing");
    // A fresh on-disk index in the data directory, removed afterwards: eval measures the real disk path.
    let dir = data_dir.join("kb-eval");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let embedder = match &args.embed_model {
        Some(model) => Some(
            BertEmbedder::load(model)
                .with_context(|| format!("loading the embedding model {}", model.display()))?,
        ),
        None => None,
    };
    let spinner = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} {pos}/{len} {elapsed}") {
        spinner.set_style(style);
    }
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let progress = |stage: &str, done: usize, total: usize| {
        spinner.set_prefix(stage.to_owned());
        spinner.set_length(total as u64);
        spinner.set_position(done as u64);
    };
    let report = match postgres {
        None => {
            let report = eval::evaluate(
                &set,
                &dir,
                &args.search.options(),
                args.threads,
                embedder.as_ref().map(|e| e as &dyn knowledge::Embedder),
                &progress,
            );
            std::fs::remove_dir_all(&dir).ok();
            report?
        }
        Some((url, schema)) => {
            anyhow::ensure!(
                embedder.is_none(),
                "--embed-model is not supported with --database: attach a model with `kb add --embed-model`"
            );
            let scratch = format!("{schema}_eval");
            let connect = || PgKnowledgeBase::connect(url, &scratch);
            connect()
                .and_then(PgKnowledgeBase::drop_all)
                .with_context(|| format!("clearing the scratch schema {scratch}"))?;
            let mut store = connect()?;
            let open = || -> knowledge::Result<Box<dyn KnowledgeStore + Send>> {
                Ok(Box::new(connect()?))
            };
            let report = eval::evaluate_store(
                &set,
                &mut store,
                &open,
                &args.search.options(),
                args.threads,
                "postgres",
                &progress,
            );
            store.drop_all().with_context(|| format!("dropping the scratch schema {scratch}"))?;
            report?
        }
    };
    spinner.finish_and_clear();
    if let Some(path) = &args.out {
        write_json(path, &report)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&mut out, &report, real)?;
    }
    Ok(())
}

fn print_report(out: &mut impl Write, r: &EvalReport, real: usize) -> anyhow::Result<()> {
    writeln!(out, "backend       {}", r.backend)?;
    writeln!(out, "chunks        {} ({} real, {} synthetic)", r.chunks, real, r.chunks - real)?;
    writeln!(out, "queries       {}", r.queries)?;
    writeln!(out, "R@1           {:.4}", r.recall_at_1)?;
    writeln!(out, "R@10          {:.4}   (target >= 0.955)", r.recall_at_10)?;
    writeln!(out, "MRR@10        {:.4}   (target >= 0.82)", r.mrr_at_10)?;
    writeln!(out, "latency p50   {:.2} ms", r.latency_p50_ms)?;
    writeln!(out, "latency p99   {:.2} ms   (target <= 20 ms)", r.latency_p99_ms)?;
    writeln!(out, "queries/s     {:.0} on {} threads", r.queries_per_s, r.threads)?;
    let process_only =
        if r.backend == "postgres" { " (this process; not the database's)" } else { "" };
    writeln!(out, "CPU per query {:.3} ms{process_only}", r.cpu_ms_per_query)?;
    if r.cpu_ms_per_query > 0.0 && r.backend != "postgres" {
        writeln!(
            out,
            "CPU-bound     {:.0} queries/s on {} idle cores",
            1e3 * r.cores as f64 / r.cpu_ms_per_query,
            r.cores
        )?;
    }
    writeln!(
        out,
        "machine load  {:.2} -> {:.2} (1-min load average, {} cores; above the cores, other work shared the CPU)",
        r.load_average.0, r.load_average.1, r.cores
    )?;
    writeln!(
        out,
        "ingest        {:.2} MB in {:.2} s = {:.2} MB/s",
        r.ingest_mb, r.ingest_s, r.ingest_mb_per_s
    )?;
    if let Some(model) = &r.embed_model {
        writeln!(
            out,
            "embedding     {model}: {:.1} s = {:.0} chunks/s (vector weight {})",
            r.embed_s, r.embed_chunks_per_s, r.options.vector_weight
        )?;
    }
    Ok(())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
