//! API keys (hashed, per-model, rate-limited) and the hash-chained audit trail, end to end.

use std::time::Duration;

use server::{
    Database, Store,
    audit::{self, Phase},
    keys::{self, NewKey},
};

use crate::{
    chat_body, config,
    fake_upstream::{Behaviour, spawn},
    start,
};

fn sqlite_path(cfg: &server::ServerConfig) -> std::path::PathBuf {
    match &cfg.database {
        Database::Sqlite(path) => path.clone(),
        Database::Postgres(_) => unreachable!(),
    }
}

async fn post(url: &str, key: Option<&str>, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

fn new_key(models: &[&str], rpm: Option<u32>) -> NewKey {
    NewKey {
        name: "test".to_owned(),
        tenant: "bank-a".to_owned(),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        requests_per_minute: rpm,
        tokens_per_minute: None,
    }
}

/// Waits until the chain holds `n` rows (response records are written off the request path).
async fn rows_eventually(store: &Store, n: usize) -> Vec<server::store::AuditRow> {
    for _ in 0..100 {
        let rows = store.audit_rows().await.unwrap();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.audit_rows().await.unwrap()
}

#[tokio::test]
async fn keys_gate_models_and_rates_and_are_stored_hashed() {
    let up = spawn("a", "qwen", Behaviour::Healthy).await;
    let cfg = config(&[&up.url, "http://127.0.0.1:9/unused"]);
    let path = sqlite_path(&cfg);
    let store = Store::open(&cfg.database).await.unwrap();
    let (open_key, open_secret) = keys::create(&store, new_key(&[], Some(3))).await.unwrap();
    let (_, ling_only) = keys::create(&store, new_key(&["ling"], None)).await.unwrap();
    let (revoked, revoked_secret) = keys::create(&store, new_key(&[], None)).await.unwrap();
    store.revoke_key(&revoked.id, "2026-01-01T00:00:00Z".to_owned()).await.unwrap();
    assert!(store.revoke_key("key_nonexistent", "x".to_owned()).await.is_err());

    // The secret is not in the database file, only its hash.
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows(open_secret.len()).any(|w| w == open_secret.as_bytes()));

    let server = start(cfg).await;
    let url = server.url("/v1/chat/completions");
    let body = chat_body("qwen", false);
    assert_eq!(post(&url, None, &body).await.1["error"]["code"], "invalid_api_key");
    assert_eq!(post(&url, Some("fk-wrong"), &body).await.0, 401);
    assert_eq!(post(&url, Some(&revoked_secret), &body).await.0, 401);
    let (status, answer) = post(&url, Some(&ling_only), &body).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("permission_denied")));
    for _ in 0..3 {
        assert_eq!(post(&url, Some(&open_secret), &body).await.0, 200);
    }
    let (status, answer) = post(&url, Some(&open_secret), &body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (429, Some("rate_limit_exceeded")),
        "{answer}"
    );

    // The listed models respect the key's allow-list.
    let models: serde_json::Value = reqwest::Client::new()
        .get(server.url("/v1/models"))
        .bearer_auth(&ling_only)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(models["data"].as_array().unwrap().iter().all(|m| m["id"] == "ling"), "{models}");

    // Every admitted request left a request and a response record carrying the key and tenant.
    let rows = rows_eventually(&store, 6).await;
    let records: Vec<audit::AuditRecord> =
        rows.iter().map(|r| serde_json::from_str(&r.record).unwrap()).collect();
    assert_eq!(records.len(), 6, "3 admitted requests x 2 records");
    assert!(records.iter().all(|r| r.key_id.as_deref() == Some(open_key.id.as_str())
        && r.tenant.as_deref() == Some("bank-a")));
    assert_eq!(
        records.iter().filter(|r| r.phase == Phase::Response && r.status == Some(200)).count(),
        3
    );
    assert!(audit::verify(&rows).first_problem.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn edits_and_deletions_break_the_chain() {
    let up = spawn("a", "qwen", Behaviour::Healthy).await;
    let cfg = config(&[&up.url]);
    let path = sqlite_path(&cfg);
    let store = Store::open(&cfg.database).await.unwrap();
    let server = start(cfg).await;
    for stream in [false, true, false] {
        let response = reqwest::Client::new()
            .post(server.url("/v1/chat/completions"))
            .json(&chat_body("qwen", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    }
    let rows = rows_eventually(&store, 6).await;
    assert_eq!(rows.len(), 6);
    let verification = audit::verify(&rows);
    assert_eq!(verification.first_problem, None);
    assert_eq!(verification.head, rows[5].hash);
    let streamed: audit::AuditRecord = serde_json::from_str(&rows[3].record).unwrap();
    assert!(
        streamed.stream && streamed.phase == Phase::Response && streamed.first_byte_ms.is_some()
    );
    server.shutdown().await;

    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE audit_log SET record = replace(record, 'qwen', 'ling') WHERE seq = 3", [])
        .unwrap();
    let problem = audit::verify(&store.audit_rows().await.unwrap()).first_problem.unwrap();
    assert!(problem.contains("record 3 was altered"), "{problem}");

    // Re-hashing the edited record does not help: the next record no longer links to it.
    let row = &store.audit_rows().await.unwrap()[2];
    let rehashed = server::store::chain_hash(&row.prev_hash, 3, &row.record);
    conn.execute("UPDATE audit_log SET hash = ?1 WHERE seq = 3", [&rehashed]).unwrap();
    let problem = audit::verify(&store.audit_rows().await.unwrap()).first_problem.unwrap();
    assert!(problem.contains("record 4 does not link"), "{problem}");

    conn.execute("DELETE FROM audit_log WHERE seq = 2", []).unwrap();
    let problem = audit::verify(&store.audit_rows().await.unwrap()).first_problem.unwrap();
    assert!(problem.contains("record 2 is missing"), "{problem}");
}

#[tokio::test]
async fn an_unwritable_audit_store_refuses_requests_unless_fail_open() {
    let up = spawn("a", "qwen", Behaviour::Healthy).await;
    for fail_open in [false, true] {
        let mut cfg = config(&[&up.url]);
        cfg.audit_fail_open = fail_open;
        let path = sqlite_path(&cfg);
        let server = start(cfg).await;
        let url = server.url("/v1/chat/completions");
        assert_eq!(post(&url, None, &chat_body("qwen", false)).await.0, 200);
        // The audit store goes away under the running server.
        rusqlite::Connection::open(&path).unwrap().execute("DROP TABLE audit_log", []).unwrap();
        let (status, answer) = post(&url, None, &chat_body("qwen", false)).await;
        if fail_open {
            assert_eq!(status, 200, "{answer}");
        } else {
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (503, Some("audit_unavailable"))
            );
        }
        // The server itself stays up either way.
        assert_eq!(reqwest::get(server.url("/health")).await.unwrap().status(), 200);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn public_addresses_need_a_key() {
    let mut cfg = config(&[]);
    cfg.host = "0.0.0.0".to_owned();
    assert!(server::bind(cfg.clone()).await.is_err());
    let store = Store::open(&cfg.database).await.unwrap();
    keys::create(&store, new_key(&[], None)).await.unwrap();
    let bound = server::bind(cfg).await.unwrap();
    assert!(bound.local_addr().unwrap().ip().is_unspecified());
}
