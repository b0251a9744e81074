//! `finllm config`: layering, provenance and one-line errors with exit code 2.

use std::path::Path;

use crate::finllm;

/// Runs `finllm config --json` in a directory holding `finllm.toml` = `toml` (if any) and returns
/// `key -> (value, source)`.
#[track_caller]
fn effective(
    toml: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Vec<(String, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    if let Some(text) = toml {
        std::fs::write(dir.path().join("finllm.toml"), text).unwrap();
    }
    let mut all = args.to_vec();
    all.extend(["config", "--json"]);
    let run = finllm(dir.path(), &all, env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    rows.iter()
        .map(|row| {
            let s = |k: &str| row[k].as_str().unwrap().to_owned();
            (s("key"), s("value"), s("source"))
        })
        .collect()
}

#[track_caller]
fn check_value(rows: &[(String, String, String)], key: &str, value: &str, source: &str) {
    let row = rows.iter().find(|(k, _, _)| k == key).unwrap();
    assert_eq!((row.1.as_str(), row.2.as_str()), (value, source), "{key}");
}

#[test]
fn defaults_apply_with_nothing_configured() {
    let rows = effective(None, &[], &[]);
    check_value(&rows, "data_dir", "./finllm-data", "default");
    check_value(&rows, "log.format", "human", "default");
    check_value(&rows, "log.level", "info", "default");
}

#[test]
fn each_layer_overrides_the_one_below() {
    let toml = "data_dir = \"/srv/finllm\"\n\n[log]\nformat = \"json\"\nlevel = \"warn\"\n";
    let rows = effective(Some(toml), &[], &[]);
    check_value(&rows, "data_dir", "/srv/finllm", "file finllm.toml:1");
    check_value(&rows, "log.format", "json", "file finllm.toml:4");

    let env = [("FINLLM_DATA_DIR", "/env/dir"), ("FINLLM_LOG_LEVEL", "DEBUG")];
    let rows = effective(Some(toml), &[], &env);
    check_value(&rows, "data_dir", "/env/dir", "env FINLLM_DATA_DIR");
    check_value(&rows, "log.level", "debug", "env FINLLM_LOG_LEVEL");
    check_value(&rows, "log.format", "json", "file finllm.toml:4");

    let rows =
        effective(Some(toml), &["--data-dir", "/flag/dir", "--log-format", "human", "-q"], &env);
    check_value(&rows, "data_dir", "/flag/dir", "flag --data-dir");
    check_value(&rows, "log.format", "human", "flag --log-format");
    check_value(&rows, "log.level", "info", "flag -q");
}

#[test]
fn verbosity_flags_move_the_configured_level() {
    check_value(&effective(None, &["-v"], &[]), "log.level", "debug", "flag -v");
    check_value(&effective(None, &["-vvvv"], &[]), "log.level", "trace", "flag -v");
    check_value(&effective(None, &["-qqqq"], &[]), "log.level", "error", "flag -q");
}

#[test]
fn explicit_config_path_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.toml");
    std::fs::write(&path, "[log]\nlevel = \"trace\"\n").unwrap();
    let rows = effective(None, &["--config", path.to_str().unwrap()], &[]);
    let row = rows.iter().find(|(k, _, _)| k == "log.level").unwrap();
    assert_eq!(row.1, "trace");
    assert!(row.2.starts_with("file ") && row.2.ends_with("custom.toml:2"), "{}", row.2);
}

#[test]
fn human_output_is_annotated_toml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("finllm.toml"), "[log]\nformat = \"json\"\n").unwrap();
    let run = finllm(dir.path(), &["config"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("format = \"json\""), "{}", run.stdout);
    assert!(run.stdout.contains("# file finllm.toml:2"), "{}", run.stdout);
    assert!(run.stdout.contains("[log]"), "{}", run.stdout);
}

/// A bad configuration exits 2 with one line on stderr that contains every `needle`.
#[track_caller]
fn check_error(toml: Option<&str>, args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(text) = toml {
        std::fs::write(dir.path().join("finllm.toml"), text).unwrap();
    }
    let mut all = args.to_vec();
    all.push("config");
    let run = finllm(dir.path(), &all, env);
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(run.stderr.trim_end().lines().count(), 1, "not one line: {}", run.stderr);
    for needle in needles {
        assert!(run.stderr.contains(needle), "{needle:?} missing from: {}", run.stderr);
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn bad_configuration_is_a_one_line_error() {
    check_error(
        Some("[log]\nlevl = \"info\"\n"),
        &[],
        &[],
        &["finllm.toml:2", "`log.levl`", "did you mean `log.level`"],
    );
    check_error(Some("\n\ncolour = true\n"), &[], &[], &["finllm.toml:3", "unknown key `colour`"]);
    check_error(Some("data_dir = 5\n"), &[], &[], &["finllm.toml:1", "`data_dir`", "integer 5"]);
    check_error(
        Some("[log]\nformat = \"xml\"\n"),
        &[],
        &[],
        &["finllm.toml:2", "`log.format`", "human, json"],
    );
    check_error(Some("log = 3\n"), &[], &[], &["finllm.toml:1", "`log`", "a table"]);
    check_error(Some("[log\nformat = 1\n"), &[], &[], &["finllm.toml:1", "invalid TOML"]);
    check_error(None, &["--config", "missing.toml"], &[], &["missing.toml", "cannot read"]);
    check_error(
        None,
        &[],
        &[("FINLLM_LOG_LEVEL", "loud")],
        &["FINLLM_LOG_LEVEL", "`log.level`", "\"loud\""],
    );
    check_error(None, &["--log-format", "xml"], &[], &["--log-format", "`log.format`"]);
    check_error(
        Some("[guard]\njudge_url = \"ftp://judge\"\n"),
        &[],
        &[],
        &["finllm.toml:2", "`guard.judge_url`", "or empty"],
    );
    check_error(
        Some("[guard]\njudge_style = \"gpt\"\n"),
        &[],
        &[],
        &["finllm.toml:2", "`guard.judge_style`", "qwen3guard"],
    );
}

#[test]
fn the_guard_judge_is_configured_with_its_key_hidden() {
    let toml = "[guard]\njudge_url = \"http://127.0.0.1:8081/v1/\"\njudge_style = \"qwen3guard\"\n";
    let rows = effective(Some(toml), &[], &[("FINLLM_GUARD_JUDGE_API_KEY", "sk-judge")]);
    check_value(&rows, "guard.judge_url", "http://127.0.0.1:8081/v1", "file finllm.toml:2");
    check_value(&rows, "guard.judge_style", "qwen3guard", "file finllm.toml:3");
    check_value(&rows, "guard.judge_model", "default", "default");
    check_value(&rows, "guard.judge_api_key", "***", "env FINLLM_GUARD_JUDGE_API_KEY");
    check_value(&effective(None, &[], &[]), "guard.judge_url", "", "default");
}

#[test]
fn unreadable_config_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = dir.path();
    check_error(None, &["--config", path.to_str().unwrap()], &[], &["cannot read config file"]);
}

#[test]
fn unknown_environment_variables_only_warn() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["config"], &[("FINLLM_NOT_A_SETTING", "1")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("FINLLM_NOT_A_SETTING"), "{}", run.stderr);
}

#[test]
fn json_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        finllm(dir.path(), &["--log-format", "json", "config"], &[("FINLLM_NOT_A_SETTING", "1")]);
    let line = run.stderr.lines().next().unwrap();
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["level"], "WARN");
}
