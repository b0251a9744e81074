//! Layered configuration: built-in defaults, a TOML file, `FINLLM_*` environment variables, then flags.
//!
//! Every setting is one row of [`SETTINGS`]. Each layer is validated against that table on its own, so an
//! error names exactly where the bad value came from (file and line, variable or flag), and the merged
//! result remembers the source of every value for `finllm config`.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use toml::de::{DeTable, DeValue};

/// The file looked for in the working directory when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "finllm.toml";

/// The prefix of environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "FINLLM_";

/// What values a setting accepts.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A filesystem path.
    Path,
    /// A host name or IP address.
    Host,
    /// A TCP port; 0 asks the system for a free one.
    Port,
    /// A whole number within bounds.
    Integer {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// `true` or `false`.
    Bool,
    /// A filesystem path, or empty for none.
    OptionalPath,
    /// A database URL (`postgres://...`, `sqlite://PATH`), or empty for the embedded default.
    DatabaseUrl,
    /// A list of http(s) URLs: a TOML array, or comma-separated text in a variable or repeated flags.
    Urls,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// One http(s) URL.
    Url,
    /// One http(s) URL, or empty for none.
    OptionalUrl,
    /// Free text without line breaks (a model name), or empty.
    Text,
    /// A credential such as an access token, or empty; never printed back.
    Secret,
    /// A PostgreSQL URL (`postgres://...`), or empty for none.
    PostgresUrl,
    /// A lower-case SQL identifier (letters, digits, `_`; at most 63).
    Identifier,
}

/// One configuration key: its dotted name, what it accepts, its default and what it is for.
#[derive(Debug)]
pub struct Setting {
    /// The dotted key as written in TOML, such as `server.port`.
    pub key: &'static str,
    /// What values it accepts.
    pub kind: Kind,
    /// The built-in default, in canonical text form.
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
}

const LOG_FORMATS: &[&str] = &["human", "json"];
const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// Every configuration key finllm knows. Adding a key is adding a row here and a field to [`Config`].
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        kind: Kind::Path,
        default: "./finllm-data",
        help: "directory where every embedded store (models, SQLite, indexes) lives",
    },
    Setting {
        key: "log.format",
        kind: Kind::Choice(LOG_FORMATS),
        default: "human",
        help: "log line format on stderr: human or json",
    },
    Setting {
        key: "log.level",
        kind: Kind::Choice(LOG_LEVELS),
        default: "info",
        help: "least severe level logged: error, warn, info, debug or trace",
    },
    Setting {
        key: "database.url",
        kind: Kind::DatabaseUrl,
        default: "",
        help: "keys and audit store: postgres://... to share one database between replicas; empty = SQLite in data_dir",
    },
    Setting {
        key: "audit.fail_open",
        kind: Kind::Bool,
        default: "false",
        help: "serve requests whose audit record cannot be written (default: refuse them with 503)",
    },
    Setting {
        key: "knowledge.database",
        kind: Kind::PostgresUrl,
        default: "",
        help: "knowledge base for `finllm serve` and `finllm kb`: postgres://... (with pgvector) to share one between servers; empty = <data_dir>/kb",
    },
    Setting {
        key: "knowledge.schema",
        kind: Kind::Identifier,
        default: "finllm_kb",
        help: "PostgreSQL schema holding the knowledge base (with knowledge.database)",
    },
    Setting {
        key: "knowledge.connections",
        kind: Kind::Integer { min: 1, max: 64 },
        default: "4",
        help: "PostgreSQL connections `finllm serve` opens to the knowledge base (searches run on them in parallel)",
    },
    Setting {
        key: "knowledge.embed_api_key",
        kind: Kind::Secret,
        default: "",
        help: "API key (Bearer) for an upstream embedding endpoint the knowledge base uses (`kb add --embed-upstream`)",
    },
    Setting {
        key: "knowledge.ground_every_chat",
        kind: Kind::Bool,
        default: "false",
        help: "with a knowledge base attached, answer every /v1/chat/completions from it with citations (default: requests with a `kb` field)",
    },
    Setting {
        key: "guard.enabled",
        kind: Kind::Bool,
        default: "true",
        help: "judge requests before the model and answers after it (天鉴), and serve /v1/moderations",
    },
    Setting {
        key: "guard.model",
        kind: Kind::OptionalPath,
        default: "",
        help: "guard classifier file (empty: the model shipped with finllm)",
    },
    Setting {
        key: "guard.policy",
        kind: Kind::OptionalPath,
        default: "",
        help: "guard policy TOML (empty: the built-in financial-compliance pack)",
    },
    Setting {
        key: "guard.judge_url",
        kind: Kind::OptionalUrl,
        default: "",
        help: "LLM judge for the guard's uncertain band: an OpenAI-compatible base URL ending in /v1 (empty: no judge)",
    },
    Setting {
        key: "guard.judge_model",
        kind: Kind::Text,
        default: "default",
        help: "model name sent to the guard's judge endpoint",
    },
    Setting {
        key: "guard.judge_style",
        kind: Kind::Choice(guard::JudgeStyle::NAMES),
        default: "instructed",
        help: "how the judge is asked: instructed (any chat model, JSON answer), qwen3guard (Qwen3Guard-Gen) or llama-guard (Llama Guard 3)",
    },
    Setting {
        key: "guard.judge_api_key",
        kind: Kind::Secret,
        default: "",
        help: "API key (Bearer) for the guard's judge endpoint",
    },
    Setting {
        key: "hub.endpoint",
        kind: Kind::Url,
        default: "https://huggingface.co",
        help: "model hub `finllm pull` downloads from (the Hugging Face hub or a mirror of its API)",
    },
    Setting {
        key: "hub.token",
        kind: Kind::Secret,
        default: "",
        help: "access token sent to the hub as Bearer (gated or private models; else HF_TOKEN is used)",
    },
    Setting {
        key: "server.host",
        kind: Kind::Host,
        default: "127.0.0.1",
        help: "address `finllm serve` listens on (beyond loopback only with API keys)",
    },
    Setting {
        key: "server.port",
        kind: Kind::Port,
        default: "8080",
        help: "TCP port `finllm serve` listens on",
    },
    Setting {
        key: "server.model",
        kind: Kind::OptionalPath,
        default: "",
        help: "model served in-process: a .gguf file, a Hugging Face folder or a name from `finllm models` (empty: none)",
    },
    Setting {
        key: "server.default_model",
        kind: Kind::OptionalPath,
        default: "Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf",
        help: "hub model served when `server.model` and `server.upstreams` are empty (pulled on first run)",
    },
    Setting {
        key: "server.download",
        kind: Kind::Bool,
        default: "true",
        help: "let `finllm serve` pull `server.default_model` when it is not in data_dir yet",
    },
    Setting {
        key: "server.kv_cache_mib",
        kind: Kind::Integer { min: 1, max: 1 << 20 },
        default: "1024",
        help: "MiB of KV cache shared by all sequences of the in-process model",
    },
    Setting {
        key: "server.max_context",
        kind: Kind::Integer { min: 16, max: 1 << 20 },
        default: "32768",
        help: "longest sequence (prompt + output) for the in-process model, capped at its window",
    },
    Setting {
        key: "server.assistant_tools",
        kind: Kind::Bool,
        default: "false",
        help: "assistant mode: offer the finance tools to the model and run its calls (chat requests without tools)",
    },
    Setting {
        key: "server.upstreams",
        kind: Kind::Urls,
        default: "",
        help: "OpenAI-compatible servers to front, tried in order with failover",
    },
    Setting {
        key: "server.upstream_timeout_secs",
        kind: Kind::Integer { min: 1, max: 3600 },
        default: "60",
        help: "seconds an upstream may take to start answering, or pause inside a stream",
    },
    Setting {
        key: "server.upstream_retries",
        kind: Kind::Integer { min: 0, max: 10 },
        default: "2",
        help: "further attempts (on other upstreams first) after a failed upstream request",
    },
    Setting {
        key: "server.max_body_bytes",
        kind: Kind::Integer { min: 1024, max: 1 << 30 },
        default: "8388608",
        help: "largest request body accepted",
    },
];

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A line of a TOML file.
    File {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the value.
        line: usize,
    },
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration layer that could not be read or holds a bad key or value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config file: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        reason: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}:{line}: invalid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the error.
        line: usize,
        /// The parser's message, on one line.
        message: String,
    },
    /// The file names a key finllm does not know.
    #[error("{path}:{line}: unknown key `{key}`{hint}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the key.
        line: usize,
        /// The dotted key.
        key: String,
        /// A suggestion such as ` (did you mean `server.port`?)`, or empty.
        hint: String,
    },
    /// A value of the wrong type or out of range.
    #[error("{origin}: `{key}`: expected {expected}, found {found}")]
    BadValue {
        /// Where the value came from.
        origin: Source,
        /// The dotted key.
        key: String,
        /// What the key accepts.
        expected: String,
        /// What was given.
        found: String,
    },
}

impl types::ErrorCode for ConfigError {
    fn error_code(&self) -> types::Code {
        types::Code::InvalidConfig
    }
}

/// The merged configuration, with the source of every value.
#[derive(Debug)]
pub struct Resolved {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Resolved {
    /// Every key in table order, with its canonical value and where that value came from.
    pub fn entries(&self) -> impl Iterator<Item = (&'static Setting, &str, &Source)> {
        SETTINGS.iter().filter_map(|setting| {
            self.values.get(setting.key).map(|(value, source)| (setting, value.as_str(), source))
        })
    }

    fn get(&self, key: &str) -> &str {
        // Every key of SETTINGS is given a default in `defaults()`, so the lookup cannot miss.
        self.values.get(key).map_or("", |(value, _)| value.as_str())
    }

    /// A validated numeric value. Validation bounded it to the setting's range, which every caller's type holds.
    fn number<T: std::str::FromStr + Default>(&self, key: &str) -> T {
        self.get(key).parse().unwrap_or_default()
    }

    fn set(&mut self, setting: &'static Setting, value: String, source: Source) {
        self.values.insert(setting.key, (value, source));
    }
}

/// The inputs to configuration, gathered by the caller (only `cli` reads the process environment).
#[derive(Debug, Default)]
pub struct Layers<'a> {
    /// The config file to read, and whether it was asked for explicitly (a missing explicit file is an error).
    pub file: Option<(&'a Path, bool)>,
    /// `(NAME, value)` pairs of the process environment.
    pub env: Vec<(String, String)>,
    /// `(key, value, flag)` triples from the command line, highest priority.
    pub flags: Vec<(&'static str, String, &'static str)>,
}

/// Merges defaults, file, environment and flags. Returns the merged values and warnings to log once
/// logging is set up (unknown `FINLLM_*` variables).
pub fn resolve(layers: &Layers<'_>) -> Result<(Resolved, Vec<String>), ConfigError> {
    let mut resolved = Resolved { values: BTreeMap::new() };
    for setting in SETTINGS {
        resolved.set(setting, setting.default.to_owned(), Source::Default);
    }
    if let Some((path, explicit)) = layers.file
        && (explicit || path.exists())
    {
        let text = std::fs::read_to_string(path)
            .map_err(|reason| ConfigError::Unreadable { path: path.to_owned(), reason })?;
        apply_file(&mut resolved, path, &text)?;
    }
    let mut warnings = Vec::new();
    for (var, value) in &layers.env {
        let Some(name) = var.strip_prefix(ENV_PREFIX) else { continue };
        if name == "CONFIG" {
            continue;
        }
        match SETTINGS.iter().find(|s| env_var(s.key) == *var) {
            Some(setting) => {
                let source = Source::Env(var.clone());
                let value = parse_text(setting, value, &source)?;
                resolved.set(setting, value, source);
            }
            None => warnings.push(format!("ignoring environment variable {var}: no such setting")),
        }
    }
    for (key, value, flag) in &layers.flags {
        let Some(setting) = SETTINGS.iter().find(|s| s.key == *key) else { continue };
        let source = Source::Flag((*flag).to_owned());
        let value = parse_text(setting, value, &source)?;
        resolved.set(setting, value, source);
    }
    Ok((resolved, warnings))
}

/// The environment variable that sets a key: `server.port` is `FINLLM_SERVER_PORT`.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

fn apply_file(resolved: &mut Resolved, path: &Path, text: &str) -> Result<(), ConfigError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table = DeTable::parse(text).map_err(|err| ConfigError::Syntax {
        path: path.to_owned(),
        line: err.span().map_or(1, |span| line_of(span.start)),
        message: err.message().split_whitespace().collect::<Vec<_>>().join(" "),
    })?;
    walk_table(resolved, path, table.get_ref(), "", &line_of)
}

fn walk_table(
    resolved: &mut Resolved,
    path: &Path,
    table: &DeTable<'_>,
    prefix: &str,
    line_of: &dyn Fn(usize) -> usize,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let full = format!("{prefix}{}", key.get_ref());
        let line = line_of(key.span().start);
        if let Some(setting) = SETTINGS.iter().find(|s| s.key == full) {
            let source = Source::File { path: path.to_owned(), line };
            let value = parse_toml(setting, value.get_ref(), &source)?;
            resolved.set(setting, value, source);
        } else if SETTINGS.iter().any(|s| s.key.starts_with(&format!("{full}."))) {
            let DeValue::Table(inner) = value.get_ref() else {
                return Err(ConfigError::BadValue {
                    origin: Source::File { path: path.to_owned(), line },
                    key: full,
                    expected: "a table".to_owned(),
                    found: describe(value.get_ref()),
                });
            };
            walk_table(resolved, path, inner, &format!("{full}."), line_of)?;
        } else {
            let hint =
                closest_key(&full).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
            return Err(ConfigError::UnknownKey { path: path.to_owned(), line, key: full, hint });
        }
    }
    Ok(())
}

fn parse_toml(
    setting: &Setting,
    value: &DeValue<'_>,
    source: &Source,
) -> Result<String, ConfigError> {
    match (setting.kind, value) {
        (Kind::Port | Kind::Integer { .. }, DeValue::Integer(int)) => {
            let number = i64::from_str_radix(int.as_str(), int.radix());
            parse_text(
                setting,
                &number.map_or_else(|_| int.as_str().to_owned(), |n| n.to_string()),
                source,
            )
            .map_err(|_| bad_value(setting, source, describe(value)))
        }
        (Kind::Bool, DeValue::Boolean(b)) => Ok(b.to_string()),
        (Kind::Urls, DeValue::Array(items)) => {
            let mut urls = Vec::new();
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::String(url) => urls.push(url.to_string()),
                    other => {
                        return Err(bad_value(
                            setting,
                            source,
                            format!("an array holding {}", describe(other)),
                        ));
                    }
                }
            }
            parse_text(setting, &urls.join(","), source)
        }
        (Kind::Port | Kind::Integer { .. } | Kind::Urls | Kind::Bool, _) => {
            Err(bad_value(setting, source, describe(value)))
        }
        (_, DeValue::String(text)) => parse_text(setting, text, source),
        (_, _) => Err(bad_value(setting, source, describe(value))),
    }
}

/// Validates a value given as text and returns its canonical form.
fn parse_text(setting: &Setting, text: &str, source: &Source) -> Result<String, ConfigError> {
    let trimmed = text.trim();
    let canonical = match setting.kind {
        Kind::Path if !trimmed.is_empty() => Some(trimmed.to_owned()),
        Kind::OptionalPath => Some(trimmed.to_owned()),
        Kind::Host if !trimmed.is_empty() && !trimmed.contains(char::is_whitespace) => {
            Some(trimmed.to_owned())
        }
        Kind::Port => trimmed.parse::<u16>().ok().map(|port| port.to_string()),
        Kind::Integer { min, max } => {
            trimmed.parse::<u64>().ok().filter(|n| (min..=max).contains(n)).map(|n| n.to_string())
        }
        Kind::Urls => {
            let urls: Vec<&str> =
                trimmed.split(',').map(str::trim).filter(|url| !url.is_empty()).collect();
            let valid = urls.iter().all(|url| {
                let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
                rest.is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
            });
            valid.then(|| urls.join(","))
        }
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some("true".to_owned()),
            "false" | "0" | "no" | "off" => Some("false".to_owned()),
            _ => None,
        },
        Kind::DatabaseUrl => {
            let ok = trimmed.is_empty()
                || ["postgres://", "postgresql://", "sqlite://"]
                    .iter()
                    .any(|p| trimmed.starts_with(p));
            ok.then(|| trimmed.to_owned())
        }
        Kind::Choice(words) => {
            let word = trimmed.to_ascii_lowercase();
            words.contains(&word.as_str()).then_some(word)
        }
        Kind::Url => parse_text(&Setting { kind: Kind::Urls, ..*setting }, trimmed, source)
            .ok()
            .filter(|url| !url.is_empty() && !url.contains(','))
            .map(|url| url.trim_end_matches('/').to_owned()),
        Kind::OptionalUrl if trimmed.is_empty() => Some(String::new()),
        Kind::OptionalUrl => {
            parse_text(&Setting { kind: Kind::Url, ..*setting }, trimmed, source).ok()
        }
        Kind::Text => (!trimmed.contains(['\n', '\r'])).then(|| trimmed.to_owned()),
        Kind::Secret => Some(trimmed.to_owned()),
        Kind::PostgresUrl => (trimmed.is_empty()
            || ["postgres://", "postgresql://"].iter().any(|p| trimmed.starts_with(p)))
        .then(|| trimmed.to_owned()),
        Kind::Identifier => {
            let ok = !trimmed.is_empty()
                && trimmed.len() <= 63
                && trimmed.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && trimmed
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            ok.then(|| trimmed.to_owned())
        }
        Kind::Path | Kind::Host => None,
    };
    canonical.ok_or_else(|| bad_value(setting, source, format!("{text:?}")))
}

fn bad_value(setting: &Setting, source: &Source, found: String) -> ConfigError {
    let expected = match setting.kind {
        Kind::Path => "a path (string)".to_owned(),
        Kind::Host => "a host name or IP address (string)".to_owned(),
        Kind::Port => "a port number from 0 (any free port) to 65535".to_owned(),
        Kind::Integer { min, max } => format!("a whole number from {min} to {max}"),
        Kind::Urls => "a list of http:// or https:// URLs".to_owned(),
        Kind::Bool => "true or false".to_owned(),
        Kind::OptionalPath => "a path (string), or empty".to_owned(),
        Kind::DatabaseUrl => {
            "postgres://USER@HOST/DB, sqlite://PATH, or empty for SQLite in data_dir".to_owned()
        }
        Kind::Choice(words) => format!("one of {}", words.join(", ")),
        Kind::Url => "an http:// or https:// URL".to_owned(),
        Kind::OptionalUrl => "an http:// or https:// URL, or empty".to_owned(),
        Kind::Text => "text on one line".to_owned(),
        Kind::Secret => "a token (string), or empty".to_owned(),
        Kind::PostgresUrl => "postgres://USER@HOST/DB, or empty for none".to_owned(),
        Kind::Identifier => "lower-case letters, digits and _ (at most 63)".to_owned(),
    };
    ConfigError::BadValue { origin: source.clone(), key: setting.key.to_owned(), expected, found }
}

fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(text) => format!("string {text:?}"),
        DeValue::Integer(int) => format!("integer {}", int.as_str()),
        DeValue::Float(float) => format!("float {}", float.as_str()),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(dt) => format!("datetime {dt}"),
        DeValue::Array(_) => "an array".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

/// The known key nearest to a misspelt one, when it is close enough to be a plausible typo.
fn closest_key(key: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .map(|s| (edit_distance(key, s.key), s.key))
        .filter(|(distance, known)| *distance <= 2.max(known.len() / 4))
        .min()
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people reading a terminal.
    Human,
    /// One JSON object a line, for log collectors.
    Json,
}

/// The typed configuration every command reads.
#[derive(Debug)]
pub struct Config {
    /// Where embedded stores live.
    pub data_dir: PathBuf,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Index into error, warn, info, debug, trace.
    pub log_level: usize,
    /// Where keys and the audit trail live.
    pub database: server::Database,
    /// Serve requests whose audit record cannot be written.
    pub audit_fail_open: bool,
    /// The knowledge base in PostgreSQL, when not the embedded one in `<data_dir>/kb`.
    pub knowledge_database: Option<String>,
    /// Its schema.
    pub knowledge_schema: String,
    /// Connections `finllm serve` opens to it.
    pub knowledge_connections: usize,
    /// API key for an upstream embedding endpoint.
    pub knowledge_embed_api_key: Option<String>,
    /// Ground every chat completion, not only those asking.
    pub knowledge_ground_every_chat: bool,
    /// Whether the guard runs in `finllm serve`.
    pub guard_enabled: bool,
    /// The guard classifier, when not the shipped one.
    pub guard_model: Option<PathBuf>,
    /// The guard policy, when not the built-in pack.
    pub guard_policy: Option<PathBuf>,
    /// The guard's LLM judge for the uncertain band, when one is configured.
    pub guard_judge: Option<guard::OpenAiJudge>,
    /// Address `finllm serve` listens on.
    pub server_host: String,
    /// Port `finllm serve` listens on.
    pub server_port: u16,
    /// The model served in-process.
    pub server_model: Option<PathBuf>,
    /// KV cache size for the in-process model.
    pub server_kv_cache_mib: usize,
    /// Longest sequence for the in-process model.
    pub server_max_context: usize,
    /// Assistant mode with the finance tools.
    pub server_assistant_tools: bool,
    /// Upstream servers `finllm serve` fronts.
    pub server_upstreams: Vec<String>,
    /// Seconds an upstream may take to answer.
    pub server_upstream_timeout_secs: u64,
    /// Further attempts after a failed upstream request.
    pub server_upstream_retries: u32,
    /// Largest request body accepted.
    pub server_max_body_bytes: usize,
    /// The model hub `finllm pull` uses.
    pub hub_endpoint: String,
    /// The hub access token, if any.
    pub hub_token: Option<String>,
    /// Hub reference served when nothing else is configured.
    pub server_default_model: Option<String>,
    /// Whether `finllm serve` may pull the default model.
    pub server_download: bool,
}

impl Config {
    /// The typed view of merged values. Values were validated as each layer was read.
    pub fn from_resolved(resolved: &Resolved) -> Config {
        Config {
            data_dir: PathBuf::from(resolved.get("data_dir")),
            log_format: if resolved.get("log.format") == "json" {
                LogFormat::Json
            } else {
                LogFormat::Human
            },
            log_level: LOG_LEVELS.iter().position(|l| *l == resolved.get("log.level")).unwrap_or(2),
            database: match resolved.get("database.url") {
                "" => server::Database::Sqlite(
                    PathBuf::from(resolved.get("data_dir")).join("finllm.sqlite"),
                ),
                url => server::Database::parse(url),
            },
            audit_fail_open: resolved.get("audit.fail_open") == "true",
            knowledge_database: Some(resolved.get("knowledge.database"))
                .filter(|url| !url.is_empty())
                .map(str::to_owned),
            knowledge_schema: resolved.get("knowledge.schema").to_owned(),
            knowledge_connections: resolved.number("knowledge.connections"),
            knowledge_ground_every_chat: resolved.get("knowledge.ground_every_chat") == "true",
            knowledge_embed_api_key: Some(resolved.get("knowledge.embed_api_key"))
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
            guard_enabled: resolved.get("guard.enabled") == "true",
            guard_model: Some(resolved.get("guard.model"))
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            guard_policy: Some(resolved.get("guard.policy"))
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            guard_judge: Some(resolved.get("guard.judge_url")).filter(|u| !u.is_empty()).map(
                |url| {
                    let key = Some(resolved.get("guard.judge_api_key"))
                        .filter(|k| !k.is_empty())
                        .map(str::to_owned);
                    // The choice was validated against `JudgeStyle::NAMES`.
                    let style = resolved.get("guard.judge_style").parse().unwrap_or_default();
                    guard::OpenAiJudge::new(url, resolved.get("guard.judge_model"), key)
                        .with_style(style)
                },
            ),
            server_host: resolved.get("server.host").to_owned(),
            server_port: resolved.number("server.port"),
            server_model: Some(resolved.get("server.model"))
                .filter(|m| !m.is_empty())
                .map(PathBuf::from),
            server_kv_cache_mib: resolved.number("server.kv_cache_mib"),
            server_max_context: resolved.number("server.max_context"),
            server_assistant_tools: resolved.get("server.assistant_tools") == "true",
            server_upstreams: resolved
                .get("server.upstreams")
                .split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
            server_upstream_timeout_secs: resolved.number("server.upstream_timeout_secs"),
            server_upstream_retries: resolved.number("server.upstream_retries"),
            server_max_body_bytes: resolved.number("server.max_body_bytes"),
            hub_endpoint: resolved.get("hub.endpoint").to_owned(),
            hub_token: Some(resolved.get("hub.token")).filter(|t| !t.is_empty()).map(str::to_owned),
            server_default_model: Some(resolved.get("server.default_model"))
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            server_download: resolved.get("server.download") == "true",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_validation() {
        for setting in SETTINGS {
            parse_text(setting, setting.default, &Source::Default).unwrap();
        }
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(closest_key("log.levle"), Some("log.level"));
        assert_eq!(closest_key("datadir"), Some("data_dir"));
        assert_eq!(closest_key("completely.different"), None);
    }
}
