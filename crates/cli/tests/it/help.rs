//! The command tree and version are discoverable.

use crate::finllm;

#[test]
fn help_lists_the_command_tree() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["--help"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for word in
        ["config", "errors", "--config", "--data-dir", "--log-format", "--verbose", "--quiet"]
    {
        assert!(run.stdout.contains(word), "--help lacks {word}:\n{}", run.stdout);
    }
}

#[test]
fn version_names_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["--version"], &[]);
    assert_eq!(run.stdout.trim(), format!("finllm {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["frobnicate"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("unrecognized subcommand"), "{}", run.stderr);
}

#[test]
fn error_table_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["errors", "--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows.len(), types::Code::ALL.len());
    assert!(rows.iter().any(|row| row["code"] == "model_unavailable" && row["status"] == 503));
}
