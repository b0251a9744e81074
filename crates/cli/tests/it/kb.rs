//! `finllm kb`: add → search (with filters) → update → rm against the knowledge base in the data
//! directory, a corrupt file skipped with its reason, `kb clean` writing JSONL plus its reports, bad
//! dates rejected as usage errors, and `kb eval` on CMRC 2018 when ../shared is present; with
//! PostgreSQL (`FINLLM_TEST_PGVECTOR_URL`), the knowledge base shared by `kb` processes and by two
//! `finllm serve` replicas.

use std::path::Path;

use crate::finllm;

fn write(dir: &Path, name: &str, text: &[u8]) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// `FINLLM_TEST_PGVECTOR_URL` with `schema` dropped there, or `None` (saying why) when it is not set.
fn fresh_pg_schema(schema: &str) -> Option<String> {
    let Ok(url) = std::env::var("FINLLM_TEST_PGVECTOR_URL") else {
        println!(
            "skipping: FINLLM_TEST_PGVECTOR_URL is not set (.ci/pgvector starts PostgreSQL with pgvector)"
        );
        return None;
    };
    knowledge::pg::PgKnowledgeBase::connect(&url, schema).unwrap().drop_all().unwrap();
    Some(url)
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn kb_add_search_update_remove() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    write(&docs, "pboc.md", "---\ntitle: 公开市场操作\ndate: 2024-02-05\n---\n# 公开市场操作\n中国人民银行开展7天期逆回购操作，中标利率1.8%。\n".as_bytes());
    write(&docs, "old.txt", "2019年央行开展逆回购操作。".as_bytes());
    write(&docs, "bad.txt", &[0, 1, 2, 0]);

    let add = finllm(
        dir.path(),
        &["kb", "add", "docs", "--tenant", "bank-a", "--tag", "pboc", "--json"],
        &[],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let report = json(&add.stdout);
    assert_eq!(report["added"].as_array().unwrap().len(), 2);
    assert_eq!(report["skipped"][0]["reason"], "binary data (NUL bytes)");

    let search = finllm(dir.path(), &["kb", "search", "逆回购中标利率", "--json"], &[]);
    assert_eq!(search.code, 0, "{}", search.stderr);
    let hits = json(&search.stdout);
    assert_eq!(hits[0]["title"], "公开市场操作");
    assert_eq!(hits[0]["tenant"], "bank-a");
    let id = hits[0]["doc_id"].as_str().unwrap().to_owned();

    let since =
        finllm(dir.path(), &["kb", "search", "逆回购", "--since", "2024-01-01", "--json"], &[]);
    assert_eq!(json(&since.stdout).as_array().unwrap().len(), 1, "undated old.txt is excluded");
    let other = finllm(dir.path(), &["kb", "search", "逆回购", "--tenant", "bank-b"], &[]);
    assert_eq!(other.stdout.trim(), "no results");

    write(&docs, "pboc.md", "---\ntitle: 公开市场操作\ndate: 2024-02-06\n---\n# 公开市场操作\n中国人民银行开展14天期逆回购操作。\n".as_bytes());
    let update = finllm(
        dir.path(),
        &["kb", "add", "docs", "--tenant", "bank-a", "--tag", "pboc", "--json"],
        &[],
    );
    let report = json(&update.stdout);
    assert_eq!(report["updated"], serde_json::json!([id]));
    assert_eq!(report["unchanged"], 1);

    let ls = finllm(dir.path(), &["kb", "ls", "--json"], &[]);
    let listed = json(&ls.stdout);
    let doc = listed.as_array().unwrap().iter().find(|d| d["doc_id"] == id.as_str()).unwrap();
    assert_eq!(doc["version"], 2);

    let rm = finllm(dir.path(), &["kb", "rm", &id], &[]);
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    let stats = finllm(dir.path(), &["kb", "stats", "--json"], &[]);
    assert_eq!(json(&stats.stdout)["documents"], 1);
    let again = finllm(dir.path(), &["kb", "rm", &id], &[]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("no document"), "{}", again.stderr);
}

#[test]
fn kb_bad_date_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["kb", "search", "x", "--since", "2024-13-45"], &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn kb_clean_writes_jsonl_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let line = "{\"id\": \"a\", \"text\": \"中国人民银行今日开展逆回购操作，中标利率持平。电话13812345678\"}";
    let corpus = format!("{line}\n{line}\n{{\"id\": \"b\", \"text\": \"短\"}}\n");
    write(dir.path(), "in.jsonl", corpus.as_bytes());
    let run = finllm(dir.path(), &["kb", "clean", "in.jsonl", "out.jsonl"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("[PHONE]"), "{out}");
    let report = json(&std::fs::read_to_string(dir.path().join("out.report.json")).unwrap());
    assert_eq!(report["report"]["docs_in"], 3);
    assert_eq!(report["report"]["docs_out"], 1);
    assert!(std::fs::read_to_string(dir.path().join("out.report.html")).unwrap().contains("<svg"));
}

#[test]
fn kb_eval_on_cmrc2018() {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/retrieval/cmrc2018");
    if !data.is_dir() {
        println!("skipped: {} is absent", data.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["kb", "eval", "--data", data.to_str().unwrap(), "--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = json(&run.stdout);
    assert!(report["recall_at_10"].as_f64().unwrap() >= 0.95, "{report}");
    assert!(
        !dir.path().join("finllm-data/kb-eval").exists(),
        "the eval index is removed afterwards"
    );
}

#[test]
fn kb_with_an_embedding_model_keeps_vectors_and_remembers_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    write(&docs, "a.txt", "中国人民银行开展7天期逆回购操作，中标利率1.8%。".as_bytes());
    write(&docs, "b.txt", "上海证券交易所发布科创板新股上市公告。".as_bytes());
    // A tiny seeded random-weight BERT: the real encoder path without a downloaded model.
    knowledge::embed::write_random_bert(&dir.path().join("model"), 3).unwrap();
    let add = finllm(dir.path(), &["kb", "add", "docs", "--embed-model", "model"], &[]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    let stats = finllm(dir.path(), &["kb", "stats", "--json"], &[]);
    let stats = json(&stats.stdout);
    assert_eq!(stats["vectors"], 2, "{stats}");
    assert_eq!(stats["vector_model"]["dim"], 32);
    // Later commands load the recorded model: a vector-only search finds a chunk from its own text.
    let search = finllm(
        dir.path(),
        &[
            "kb",
            "search",
            "上海证券交易所发布科创板新股上市公告。",
            "--jieba-weight",
            "0",
            "--bigram-weight",
            "0",
            "--json",
        ],
        &[],
    );
    assert_eq!(search.code, 0, "{}", search.stderr);
    assert_eq!(json(&search.stdout)[0]["body"], "上海证券交易所发布科创板新股上市公告。");
    // A recorded model that has gone missing is an error, not a silently lexical-only search.
    std::fs::remove_dir_all(dir.path().join("model")).unwrap();
    let search = finllm(dir.path(), &["kb", "search", "公告"], &[]);
    assert_eq!(search.code, 1, "{}", search.stdout);
    assert!(search.stderr.contains("embedding model"), "{}", search.stderr);
}

#[test]
fn serve_attaches_the_knowledge_base_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    write(
        &dir.path().join("docs"),
        "a.txt",
        "中国人民银行开展7天期逆回购操作，中标利率1.8%。".as_bytes(),
    );
    let add = finllm(dir.path(), &["kb", "add", "docs"], &[]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    let (mut child, addr, _log) = crate::serve::spawn_serve(dir.path(), &[]);
    let stats = crate::serve::http_get(&addr, "/v1/kb/stats");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(stats.starts_with("HTTP/1.1 200") && stats.contains(r#""documents":1"#), "{stats}");
}

/// `--database`: the knowledge base in PostgreSQL with pgvector, shared by separate `finllm` processes
/// (one adds, another searches, a third removes). Needs `FINLLM_TEST_PGVECTOR_URL` (`.ci/pgvector`).
#[test]
fn kb_in_postgres_is_shared_by_processes() {
    let schema = "clitest_kb";
    let Some(url) = fresh_pg_schema(schema) else { return };
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    write(&docs, "pboc.md", "---\ntitle: 公开市场操作\ndate: 2024-02-05\n---\n# 公开市场操作\n中国人民银行开展7天期逆回购操作，中标利率1.8%。\n".as_bytes());
    write(&docs, "bad.txt", &[0, 1, 2, 0]);
    let db = ["--database", url.as_str(), "--schema", schema];
    let run = |args: &[&str]| finllm(dir.path(), &[&["kb"], args, &db[..]].concat(), &[]);
    let add = run(&["add", "docs", "--tenant", "bank-a", "--json"]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    let report = json(&add.stdout);
    assert_eq!(report["added"].as_array().unwrap().len(), 1);
    assert_eq!(report["skipped"][0]["reason"], "binary data (NUL bytes)");
    let search = run(&["search", "逆回购中标利率", "--json"]);
    assert_eq!(search.code, 0, "{}", search.stderr);
    let hits = json(&search.stdout);
    assert_eq!(hits[0]["title"], "公开市场操作");
    let id = hits[0]["doc_id"].as_str().unwrap().to_owned();
    assert_eq!(run(&["search", "逆回购", "--tenant", "bank-b"]).stdout.trim(), "no results");
    let stats = json(&run(&["stats", "--json"]).stdout);
    assert_eq!((stats["documents"].as_u64(), stats["chunks"].as_u64()), (Some(1), Some(1)));
    // The embedded base in the data directory is untouched.
    let local = finllm(dir.path(), &["kb", "stats", "--json"], &[]);
    assert_eq!(json(&local.stdout)["documents"], 0);
    assert_eq!(run(&["rm", &id]).code, 0);
    assert_eq!(run(&["search", "逆回购"]).stdout.trim(), "no results");
    let bad = finllm(dir.path(), &["kb", "ls", "--database", &url, "--schema", "Bad-Name"], &[]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("schema"), "{}", bad.stderr);
}

/// `POST path` with a JSON body; the response's status line and body.
fn http_post(addr: &str, path: &str, body: &serde_json::Value) -> (String, serde_json::Value) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, payload) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap_or_default().to_owned(), json(payload))
}

/// `finllm serve --kb-database`: two server processes (replicas) on one knowledge base in PostgreSQL.
/// A document added over HTTP through one is found, and cited in a grounded answer, through the other;
/// `finllm kb --database` sees it too. Needs `FINLLM_TEST_PGVECTOR_URL` (`.ci/pgvector`).
#[test]
fn serve_replicas_share_a_knowledge_base_in_postgres() {
    let schema = "clitest_serve_kb";
    let Some(url) = fresh_pg_schema(schema) else { return };
    const RATE: &str = "中国人民银行开展7天期逆回购操作，中标利率1.8%。";
    // The model: answers with the passage's sentence and cites passage [1].
    let model = crate::redteam_mock::Mock::start(|_, _| {
        (200, crate::redteam_mock::chat(&format!("{RATE}[1]")))
    });
    let dir = tempfile::tempdir().unwrap();
    let args = ["--upstream", &model.url, "--kb-database", &url, "--kb-schema", schema];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let (mut first, first_addr, _log1) = crate::serve::spawn_serve(dir.path(), &args);
    let (mut second, second_addr, _log2) = crate::serve::spawn_serve(dir.path(), &args);

    let documents = serde_json::json!({"documents": [
        {"source": "pbc/open-market", "title": "公开市场操作", "text": RATE, "tenant": "bank-a"},
        {"source": "sse/ipo", "title": "上交所公告", "text": "上海证券交易所发布科创板新股上市公告。"}
    ]});
    let (status, report) = http_post(&first_addr, "/v1/kb/documents", &documents);
    assert!(status.contains("200"), "{status}: {report}");
    assert_eq!(report["added"].as_array().unwrap().len(), 2, "{report}");

    let (status, hits) = http_post(
        &second_addr,
        "/v1/kb/search",
        &serde_json::json!({"query": "逆回购中标利率", "k": 1}),
    );
    assert!(status.contains("200"), "{status}: {hits}");
    assert_eq!(hits["data"][0]["body"], RATE, "{hits}");
    let id = hits["data"][0]["doc_id"].as_str().unwrap().to_owned();

    let chat = serde_json::json!({"model": "m", "kb": {"k": 2},
        "messages": [{"role": "user", "content": "逆回购中标利率是多少？"}]});
    let (status, answer) = http_post(&second_addr, "/v1/chat/completions", &chat);
    assert!(status.contains("200"), "{status}: {answer}");
    let citation = &answer["citations"][0];
    assert_eq!(
        (citation["doc_id"].as_str(), citation["version"].as_u64(), citation["quote"].as_str()),
        (Some(id.as_str()), Some(1), Some(RATE)),
        "{answer}"
    );
    // The model was given the passage the first server stored.
    let prompt = model.requests.lock().unwrap().last().unwrap().1.to_string();
    assert!(prompt.contains("中标利率1.8%"), "{prompt}");

    // The command line sees the same knowledge base (config key knowledge.database as a variable).
    let ls = finllm(
        dir.path(),
        &["kb", "ls", "--json"],
        &[("FINLLM_KNOWLEDGE_DATABASE", url.as_str()), ("FINLLM_KNOWLEDGE_SCHEMA", schema)],
    );
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    assert_eq!(json(&ls.stdout).as_array().unwrap().len(), 2);

    for child in [&mut first, &mut second] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// `kb add --embed-upstream URL --embed-name MODEL`: an OpenAI-compatible `/v1/embeddings` endpoint as
/// the encoder, remembered so later commands embed queries with it too.
#[test]
fn kb_with_an_upstream_embedding_endpoint() {
    // Two-dimensional "embeddings": how much of a text is about the central bank versus the exchange.
    let endpoint = crate::redteam_mock::Mock::start(|_, body| {
        let data: Vec<serde_json::Value> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let text = text.as_str().unwrap();
                let v =
                    [text.matches('央').count() as f32 + 0.1, text.matches('交').count() as f32];
                serde_json::json!({"index": index, "embedding": v})
            })
            .collect();
        (200, serde_json::json!({"data": data}).to_string())
    });
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    write(&docs, "a.txt", "央行开展逆回购操作。".as_bytes());
    write(&docs, "b.txt", "上海证券交易所发布公告。".as_bytes());
    let base = format!("{}/v1", endpoint.url);
    let add = finllm(
        dir.path(),
        &["kb", "add", "docs", "--embed-upstream", &base, "--embed-name", "two-d"],
        &[],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let stats = json(&finllm(dir.path(), &["kb", "stats", "--json"], &[]).stdout);
    assert_eq!(
        (stats["vectors"].as_u64(), stats["vector_model"]["name"].as_str()),
        (Some(2), Some("two-d"))
    );
    let vector_only = ["--jieba-weight", "0", "--bigram-weight", "0", "--json", "-k", "1"];
    let search = finllm(dir.path(), &[&["kb", "search", "交交"][..], &vector_only].concat(), &[]);
    assert_eq!(search.code, 0, "{}", search.stderr);
    assert_eq!(json(&search.stdout)[0]["body"], "上海证券交易所发布公告。");
    let without_name = finllm(dir.path(), &["kb", "add", "docs", "--embed-upstream", &base], &[]);
    assert_eq!(without_name.code, 2, "{}", without_name.stderr);
}

/// `kb add --prune`: documents whose file is gone are deleted, on the embedded base and in PostgreSQL
/// alike; a file that has become unreadable is skipped and keeps its documents.
#[test]
fn kb_prune_deletes_gone_files_but_keeps_unreadable_ones() {
    let pg = std::env::var("FINLLM_TEST_PGVECTOR_URL").ok();
    if pg.is_none() {
        println!("FINLLM_TEST_PGVECTOR_URL is not set: checking the embedded base only");
    }
    for url in [None].into_iter().chain(pg.as_deref().map(Some)) {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        std::fs::create_dir(&docs).unwrap();
        write(&docs, "a.txt", "中国人民银行开展逆回购操作。".as_bytes());
        write(&docs, "b.txt", "上海证券交易所发布公告。".as_bytes());
        write(&docs, "c.txt", "国家统计局公布居民消费价格指数。".as_bytes());
        let mut db = Vec::new();
        if let Some(url) = url {
            let schema = "clitest_prune";
            knowledge::pg::PgKnowledgeBase::connect(url, schema).unwrap().drop_all().unwrap();
            db = vec!["--database", url, "--schema", schema];
        }
        let run = |args: &[&str]| finllm(dir.path(), &[&["kb"], args, &db[..]].concat(), &[]);
        assert_eq!(run(&["add", "docs"]).code, 0);
        std::fs::remove_file(docs.join("b.txt")).unwrap();
        write(&docs, "c.txt", &[0, 1, 2, 0]);
        let add = run(&["add", "docs", "--prune", "--json"]);
        assert_eq!(add.code, 0, "{}", add.stderr);
        let report = json(&add.stdout);
        assert_eq!(report["deleted"].as_array().unwrap().len(), 1, "{url:?}: {report}");
        assert_eq!(report["skipped"][0]["reason"], "binary data (NUL bytes)");
        let listed = json(&run(&["ls", "--json"]).stdout);
        let mut sources: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["source"].as_str().unwrap().rsplit('/').next().unwrap())
            .collect();
        sources.sort();
        assert_eq!(sources, ["a.txt", "c.txt"], "{url:?}");
    }
}
