//! The scale-out path: two server replicas share one real PostgreSQL database for keys and the audit chain.
//!
//! Needs `FINLLM_TEST_POSTGRES_URL` (`.ci/run` installs and starts PostgreSQL and sets it); without it the
//! test says so and returns.

use std::time::Duration;

use server::{Database, Store, audit, keys};

use crate::{
    chat_body, config,
    fake_upstream::{Behaviour, spawn},
    start,
};

#[tokio::test]
async fn two_replicas_share_one_chain_and_one_key_table() {
    let Ok(url) = std::env::var("FINLLM_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipping: FINLLM_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)"
        );
        return;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("DROP TABLE IF EXISTS audit_log; DROP TABLE IF EXISTS api_keys;")
        .await
        .unwrap();

    let database = Database::Postgres(url.clone());
    let store = Store::open(&database).await.unwrap();
    let new_key = keys::NewKey {
        name: "shared".to_owned(),
        tenant: "bank-b".to_owned(),
        models: Vec::new(),
        requests_per_minute: None,
        tokens_per_minute: None,
    };
    let (_, secret) = keys::create(&store, new_key).await.unwrap();

    let up = spawn("a", "qwen", Behaviour::Healthy).await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut cfg = config(&[&up.url]);
        cfg.database = database.clone();
        replicas.push(start(cfg).await);
    }
    let client_http = reqwest::Client::new();
    let mut requests = Vec::new();
    for i in 0..40 {
        let url = replicas[i % 2].url("/v1/chat/completions");
        let request =
            client_http.post(url).bearer_auth(&secret).json(&chat_body("qwen", i % 3 == 0)).send();
        requests.push(async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        });
    }
    futures_util::future::join_all(requests).await;
    let unauthorised = client_http
        .post(replicas[1].url("/v1/chat/completions"))
        .json(&chat_body("qwen", false))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);

    let mut rows = Vec::new();
    for _ in 0..200 {
        rows = store.audit_rows().await.unwrap();
        if rows.len() >= 80 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rows.len(), 80, "40 requests x (request + response) records");
    let verification = audit::verify(&rows);
    assert_eq!(verification.first_problem, None, "concurrent replicas forked the chain");
    for replica in replicas {
        replica.shutdown().await;
    }

    // Tampering is caught on PostgreSQL too.
    client
        .execute(
            "UPDATE audit_log SET record = replace(record, 'bank-b', 'bank-x') WHERE seq = 10",
            &[],
        )
        .await
        .unwrap();
    let problem = audit::verify(&store.audit_rows().await.unwrap()).first_problem.unwrap();
    assert!(problem.contains("record 10 was altered"), "{problem}");
}
