//! `finllm keys` and `finllm audit` against the embedded SQLite store in the data directory.

use crate::finllm;

#[test]
fn keys_create_list_revoke_and_audit_verify_export() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(
        dir.path(),
        &[
            "keys",
            "create",
            "--name",
            "risk team",
            "--tenant",
            "bank-a",
            "--models",
            "qwen,ling",
            "--rpm",
            "60",
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let created: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("fk-"));
    assert!(
        dir.path().join("finllm-data/finllm.sqlite").exists(),
        "the store lives in the data directory"
    );

    let run = finllm(dir.path(), &["keys", "list", "--json"], &[]);
    let keys: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["models"], serde_json::json!(["qwen", "ling"]));
    assert!(!run.stdout.contains("fk-"), "list never shows secrets");

    let run = finllm(dir.path(), &["keys", "revoke", &id], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = finllm(dir.path(), &["keys", "list"], &[]);
    assert!(run.stdout.contains("revoked"), "{}", run.stdout);
    let run = finllm(dir.path(), &["keys", "revoke", "key_missing"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no API key with id key_missing"), "{}", run.stderr);

    // An empty chain verifies; export of an empty chain is empty.
    let run = finllm(dir.path(), &["audit", "verify"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("ok: 0 records"), "{}", run.stdout);
    let run = finllm(dir.path(), &["audit", "export"], &[]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
}

#[test]
fn a_bad_database_url_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["audit", "verify"], &[("FINLLM_DATABASE_URL", "mysql://x")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("FINLLM_DATABASE_URL") && run.stderr.contains("postgres://"),
        "{}",
        run.stderr
    );
}
