//! Chat templates: the model's own Jinja template, with built-in fallbacks.
//!
//! A chat model only answers well when its conversation is laid out exactly as in training, so the model's own
//! template (`tokenizer.chat_template` in GGUF, `chat_template` in `tokenizer_config.json` or
//! `chat_template.jinja`) is rendered the way Hugging Face `transformers` renders it: Jinja with `trim_blocks`
//! and `lstrip_blocks`, `bos_token`/`eos_token`, `raise_exception`, `strftime_now`, a `tojson` filter with
//! Python's separators, loop controls and Python string/dict methods (`.strip()`, `.items()`, ...). Models that
//! ship no template get a built-in one chosen from their architecture and vocabulary: ChatML (Qwen), Llama 3 or
//! Ling's `<role>HUMAN</role>…<|role_end|>` format.

mod clock;
mod pyjson;

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value as Json};
use types::{Code, ErrorCode};

use crate::tokenizer::{read_optional_json, special_token_text};

/// Why a chat template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template or configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `tokenizer_config.json` (or the GGUF metadata) holds a template in a form that is not understood.
    #[error("invalid chat template configuration: {0}")]
    Config(String),
    /// The template is not valid Jinja.
    #[error("chat template does not compile: {0}")]
    Syntax(String),
    /// The template rejected the conversation with `raise_exception` (e.g. roles that do not alternate).
    #[error("chat template rejected the conversation: {0}")]
    Raised(String),
    /// Rendering failed for another reason (an unknown filter, a type error in the template).
    #[error("chat template failed to render: {0}")]
    Render(String),
}

impl ErrorCode for TemplateError {
    fn error_code(&self) -> Code {
        match self {
            TemplateError::Io { .. } => Code::ModelUnavailable,
            TemplateError::Config(_) | TemplateError::Syntax(_) => Code::UnsupportedFormat,
            TemplateError::Raised(_) | TemplateError::Render(_) => Code::InvalidParameter,
        }
    }
}

/// A chat message in OpenAI's shape. `content` is plain text: an OpenAI content array of text parts is joined,
/// and `null` (an assistant turn that only calls tools) becomes empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool` (templates may accept more, e.g. `ipython`).
    pub role: String,
    /// The message text.
    #[serde(default, deserialize_with = "content_text")]
    pub content: String,
    /// Tool calls made by an assistant turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a `tool` message: the function's name; otherwise an optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message with a role and text only.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into(), ..Self::default() }
    }
}

/// One tool call of an assistant turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, echoed by the tool message that answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Always `function` today.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// The function called.
    pub function: FunctionCall,
}

/// The function part of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments: a JSON object, or OpenAI's JSON-encoded string of one (decoded before rendering, since
    /// templates expect a mapping).
    #[serde(default)]
    pub arguments: Json,
}

fn function_kind() -> String {
    "function".to_owned()
}

fn content_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Json::deserialize(deserializer)? {
        Json::Null => String::new(),
        Json::String(s) => s,
        Json::Array(parts) => parts
            .iter()
            .filter_map(|part| match part {
                Json::String(s) => Some(s.as_str()),
                Json::Object(map) => map.get("text").and_then(Json::as_str),
                _ => None,
            })
            .collect(),
        other => other.to_string(),
    })
}

/// The built-in templates, for models that ship none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinTemplate {
    /// `<|im_start|>role\n…<|im_end|>` as in Qwen2.5, with Qwen's tool-call format.
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` as in Llama 3.1, tools as JSON.
    Llama3,
    /// Ant's Ling: `<role>HUMAN</role>…<|role_end|>`, tool calls in `<tool_call>` tags.
    Ling,
}

impl BuiltinTemplate {
    /// The Jinja source.
    pub fn source(self) -> &'static str {
        match self {
            BuiltinTemplate::ChatMl => CHATML,
            BuiltinTemplate::Llama3 => LLAMA3,
            BuiltinTemplate::Ling => LING,
        }
    }

    /// The template's name, as used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinTemplate::ChatMl => "chatml",
            BuiltinTemplate::Llama3 => "llama3",
            BuiltinTemplate::Ling => "ling",
        }
    }

    /// Parses a name given in configuration (`chatml`, `llama3`, `ling`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "chatml" | "qwen" | "qwen2" => Some(BuiltinTemplate::ChatMl),
            "llama3" | "llama-3" => Some(BuiltinTemplate::Llama3),
            "ling" | "bailing" | "bailing2" => Some(BuiltinTemplate::Ling),
            _ => None,
        }
    }

    /// Picks the fallback for a model without a template, from its architecture name (GGUF
    /// `general.architecture` or HF `model_type`) and whether its vocabulary has a given token.
    pub fn detect(architecture: &str, has_token: impl Fn(&str) -> bool) -> Self {
        let arch = architecture.to_ascii_lowercase();
        if arch.starts_with("bailing") || has_token("<|role_end|>") {
            BuiltinTemplate::Ling
        } else if has_token("<|start_header_id|>") && has_token("<|eot_id|>") {
            BuiltinTemplate::Llama3
        } else {
            BuiltinTemplate::ChatMl
        }
    }

    fn default_special_tokens(self) -> (&'static str, &'static str) {
        match self {
            BuiltinTemplate::ChatMl => ("", "<|im_end|>"),
            BuiltinTemplate::Llama3 => ("<|begin_of_text|>", "<|eot_id|>"),
            BuiltinTemplate::Ling => ("", "<|role_end|>"),
        }
    }
}

/// Where a template came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// The model's own template.
    Model,
    /// A built-in fallback.
    Builtin(BuiltinTemplate),
}

const DEFAULT: &str = "default";
const TOOL_USE: &str = "tool_use";

/// A compiled chat template with the special-token texts it refers to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    has_tool_use: bool,
    origin: TemplateOrigin,
    bos_token: String,
    eos_token: String,
    fixed_time: Option<i64>,
}

impl ChatTemplate {
    /// Compiles a template from source; `bos_token`/`eos_token` are the texts the template may print.
    pub fn from_source(
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, TemplateError> {
        Self::build(source.to_owned(), None, TemplateOrigin::Model, bos_token, eos_token)
    }

    /// A built-in template with its usual special tokens.
    pub fn builtin(which: BuiltinTemplate) -> Self {
        let (bos, eos) = which.default_special_tokens();
        Self::builtin_with_tokens(which, bos, eos)
    }

    fn builtin_with_tokens(which: BuiltinTemplate, bos: &str, eos: &str) -> Self {
        let mut env = Self::environment();
        // The built-in sources are compiled by a unit test; were one broken, rendering would report the
        // missing template as an error rather than panic here.
        let _ = env.add_template(DEFAULT, which.source());
        Self {
            env,
            has_tool_use: false,
            origin: TemplateOrigin::Builtin(which),
            bos_token: bos.into(),
            eos_token: eos.into(),
            fixed_time: None,
        }
    }

    /// The template stored in a GGUF file (`tokenizer.chat_template`, plus `tokenizer.chat_template.tool_use`
    /// if present), or a built-in one chosen from the architecture and vocabulary when there is none.
    pub fn from_gguf(content: &Content) -> Result<Self, TemplateError> {
        let meta = &content.metadata;
        let tokens: &[GgufValue] = match meta.get("tokenizer.ggml.tokens") {
            Some(GgufValue::Array(tokens)) => tokens,
            _ => &[],
        };
        let token_text = |key: &str| -> Option<String> {
            let id = match meta.get(key)? {
                GgufValue::U32(v) => *v as usize,
                GgufValue::I32(v) => usize::try_from(*v).ok()?,
                GgufValue::U64(v) => usize::try_from(*v).ok()?,
                _ => return None,
            };
            match tokens.get(id)? {
                GgufValue::String(s) => Some(s.clone()),
                _ => None,
            }
        };
        let bos = token_text("tokenizer.ggml.bos_token_id");
        let eos = token_text("tokenizer.ggml.eos_token_id");
        let string = |key: &str| -> Result<Option<String>, TemplateError> {
            match meta.get(key) {
                None => Ok(None),
                Some(GgufValue::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(TemplateError::Config(format!("{key} is not a string"))),
            }
        };
        match string("tokenizer.chat_template")? {
            Some(source) => {
                let tool_use = string("tokenizer.chat_template.tool_use")?;
                Self::build(
                    source,
                    tool_use,
                    TemplateOrigin::Model,
                    bos.as_deref().unwrap_or(""),
                    eos.as_deref().unwrap_or(""),
                )
            }
            None => {
                let arch = string("general.architecture")?.unwrap_or_default();
                let has =
                    |t: &str| tokens.iter().any(|v| matches!(v, GgufValue::String(s) if s == t));
                let which = BuiltinTemplate::detect(&arch, has);
                let (default_bos, default_eos) = which.default_special_tokens();
                Ok(Self::builtin_with_tokens(
                    which,
                    bos.as_deref().unwrap_or(default_bos),
                    eos.as_deref().unwrap_or(default_eos),
                ))
            }
        }
    }

    /// The template of a Hugging Face model folder: `chat_template.jinja` if present, else `chat_template` in
    /// `tokenizer_config.json` (a string, or a list of `{name, template}` with `default` and `tool_use`), else a
    /// built-in one chosen from `config.json`'s `model_type` and the added tokens.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, TemplateError> {
        let config_path = dir.join("tokenizer_config.json");
        let config = read_optional_json(&config_path)
            .map_err(|err| TemplateError::Config(err.to_string()))?
            .unwrap_or(Json::Null);
        let bos = special_token_text(&config["bos_token"]).unwrap_or_default();
        let eos = special_token_text(&config["eos_token"]).unwrap_or_default();
        let jinja_path = dir.join("chat_template.jinja");
        match std::fs::read_to_string(&jinja_path) {
            Ok(source) => return Self::build(source, None, TemplateOrigin::Model, &bos, &eos),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(TemplateError::Io { path: jinja_path.display().to_string(), source });
            }
        }
        match &config["chat_template"] {
            Json::String(source) => {
                Self::build(source.clone(), None, TemplateOrigin::Model, &bos, &eos)
            }
            Json::Array(named) => {
                let mut default = None;
                let mut tool_use = None;
                for entry in named {
                    let (Some(name), Some(source)) =
                        (entry["name"].as_str(), entry["template"].as_str())
                    else {
                        return Err(TemplateError::Config(format!(
                            "{}: chat_template entries need `name` and `template`",
                            config_path.display()
                        )));
                    };
                    match name {
                        DEFAULT => default = Some(source.to_owned()),
                        TOOL_USE => tool_use = Some(source.to_owned()),
                        _ => {}
                    }
                }
                let default = default
                    .or_else(|| {
                        named.first().and_then(|e| e["template"].as_str()).map(str::to_owned)
                    })
                    .ok_or_else(|| {
                        TemplateError::Config(format!(
                            "{}: chat_template list is empty",
                            config_path.display()
                        ))
                    })?;
                Self::build(default, tool_use, TemplateOrigin::Model, &bos, &eos)
            }
            Json::Null => {
                let model = read_optional_json(&dir.join("config.json"))
                    .map_err(|err| TemplateError::Config(err.to_string()))?
                    .unwrap_or(Json::Null);
                let arch = model["model_type"].as_str().unwrap_or_default();
                let added = &config["added_tokens_decoder"];
                let has = |t: &str| {
                    added
                        .as_object()
                        .is_some_and(|m| m.values().any(|v| v["content"].as_str() == Some(t)))
                };
                let which = BuiltinTemplate::detect(arch, has);
                let (default_bos, default_eos) = which.default_special_tokens();
                let bos = if bos.is_empty() { default_bos.to_owned() } else { bos };
                let eos = if eos.is_empty() { default_eos.to_owned() } else { eos };
                Ok(Self::builtin_with_tokens(which, &bos, &eos))
            }
            _ => Err(TemplateError::Config(format!(
                "{}: chat_template is neither a string nor a list",
                config_path.display()
            ))),
        }
    }

    fn build(
        source: String,
        tool_use: Option<String>,
        origin: TemplateOrigin,
        bos: &str,
        eos: &str,
    ) -> Result<Self, TemplateError> {
        let mut env = Self::environment();
        env.add_template_owned(DEFAULT, source)
            .map_err(|err| TemplateError::Syntax(describe(&err)))?;
        let has_tool_use = match tool_use {
            Some(source) => {
                env.add_template_owned(TOOL_USE, source)
                    .map_err(|err| TemplateError::Syntax(describe(&err)))?;
                true
            }
            None => false,
        };
        Ok(Self {
            env,
            has_tool_use,
            origin,
            bos_token: bos.to_owned(),
            eos_token: eos.to_owned(),
            fixed_time: None,
        })
    }

    /// A Jinja environment that behaves like `transformers`' chat-template sandbox.
    fn environment() -> Environment<'static> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env
    }

    /// Makes `strftime_now` report a fixed time (Unix seconds, UTC) instead of the clock: for reproducible
    /// prompts and tests.
    pub fn with_fixed_time(mut self, unix_seconds: i64) -> Self {
        self.fixed_time = Some(unix_seconds);
        self
    }

    /// Replaces the special-token texts the template sees as `bos_token` and `eos_token`.
    pub fn with_special_tokens(mut self, bos_token: &str, eos_token: &str) -> Self {
        self.bos_token = bos_token.to_owned();
        self.eos_token = eos_token.to_owned();
        self
    }

    /// Where the template came from.
    pub fn origin(&self) -> TemplateOrigin {
        self.origin
    }

    /// The text printed for `bos_token` (empty if the model has none).
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// Renders a conversation. `tools` is the OpenAI `tools` array, passed to the template as `tools`;
    /// `add_generation_prompt` appends the header of the assistant turn the model is to write.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Json>,
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        self.render_with(messages, tools, add_generation_prompt, &Map::new())
    }

    /// Like [`ChatTemplate::render`], with extra template variables (e.g. `enable_thinking`, `date_string`).
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Json>,
        add_generation_prompt: bool,
        extra: &Map<String, Json>,
    ) -> Result<String, TemplateError> {
        let name = if tools.is_some() && self.has_tool_use { TOOL_USE } else { DEFAULT };
        let template =
            self.env.get_template(name).map_err(|err| TemplateError::Render(describe(&err)))?;
        let mut context = extra.clone();
        context.insert("messages".into(), Json::Array(messages.iter().map(message_json).collect()));
        context.insert("tools".into(), tools.cloned().unwrap_or(Json::Null));
        context.insert("add_generation_prompt".into(), Json::Bool(add_generation_prompt));
        context.insert("bos_token".into(), Json::String(self.bos_token.clone()));
        context.insert("eos_token".into(), Json::String(self.eos_token.clone()));
        let mut ctx = Value::from_serialize(&context);
        let now = self.fixed_time.unwrap_or_else(clock::now_unix);
        let strftime =
            Value::from_function(move |format: String| -> String { clock::strftime(&format, now) });
        ctx = minijinja::context! { strftime_now => strftime, ..ctx };
        template.render(ctx).map_err(|err| {
            if err.kind() == ErrorKind::InvalidOperation
                && std::error::Error::source(&err).is_some_and(|s| s.is::<Raised>())
            {
                TemplateError::Raised(err.detail().unwrap_or_default().to_owned())
            } else {
                TemplateError::Render(describe(&err))
            }
        })
    }
}

/// The message as the template sees it: absent fields are left out (so `'tool_calls' in message` works) and
/// string-encoded tool-call arguments are decoded to a mapping.
fn message_json(message: &ChatMessage) -> Json {
    let mut value = serde_json::to_value(message).unwrap_or(Json::Null);
    if let Some(calls) = value.get_mut("tool_calls").and_then(Json::as_array_mut) {
        for call in calls {
            let arguments = &mut call["function"]["arguments"];
            if let Json::String(text) = arguments
                && let Ok(parsed @ Json::Object(_)) = serde_json::from_str::<Json>(text)
            {
                *arguments = parsed;
            }
        }
    }
    value
}

/// Marks errors raised by the template itself.
#[derive(Debug)]
struct Raised;

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("raised by the template")
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message).with_source(Raised))
}

/// `tojson` as in `transformers`: Python's `json.dumps` with `ensure_ascii=False`, `", "`/`": "` separators and
/// keys in their given order by default; `indent`, `separators`, `sort_keys` and `ensure_ascii` as in Python.
// minijinja hands filter arguments over by value.
#[allow(clippy::needless_pass_by_value)]
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    let mut options = pyjson::Options {
        indent,
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ..pyjson::Options::default()
    };
    match separators.as_deref() {
        None if indent.is_some() => options.item_separator = ",".into(),
        None => {}
        Some([item, key]) => {
            options.item_separator.clone_from(item);
            options.key_separator.clone_from(key);
        }
        Some(_) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson: separators must be (item, key)",
            ));
        }
    }
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|err| Error::new(ErrorKind::InvalidOperation, format!("tojson: {err}")))?;
    Ok(Value::from_safe_string(pyjson::dumps(&json, &options)))
}

/// A minijinja error with its location and cause, on one line.
fn describe(err: &Error) -> String {
    let mut text = err.to_string();
    if let Some(line) = err.line()
        && !text.contains("line")
    {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

/// ChatML as Qwen2.5 lays it out, without Qwen's identity system prompt.
const CHATML: &str = r#"{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if messages and messages[0].role == 'system' %}
{{- messages[0].content + '\n\n' }}
{%- endif %}
{{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
{%- for tool in tools %}
{{- '\n' + (tool | tojson) }}
{%- endfor %}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- elif messages and messages[0].role == 'system' %}
{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'assistant' and message.tool_calls %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}
{{- '\n' + message.content }}
{%- endif %}
{%- for call in message.tool_calls %}
{{- '\n<tool_call>\n{"name": "' + call.function.name + '", "arguments": ' + (call.function.arguments | tojson) + '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}
{{- '<|im_start|>user' }}
{%- endif %}
{{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}
{{- '<|im_end|>\n' }}
{%- endif %}
{%- else %}
{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %}"#;

/// Llama 3.1's layout: system header, tools (JSON, in the first user turn), `ipython` tool results.
const LLAMA3: &str = r#"{{- bos_token }}
{%- if messages and messages[0].role == 'system' %}
{%- set system_message = messages[0].content | trim %}
{%- set conversation = messages[1:] %}
{%- else %}
{%- set system_message = '' %}
{%- set conversation = messages %}
{%- endif %}
{%- if system_message or tools %}
{{- '<|start_header_id|>system<|end_header_id|>\n\n' }}
{%- if tools %}
{{- 'Environment: ipython\n\n' }}
{%- endif %}
{{- system_message + '<|eot_id|>' }}
{%- endif %}
{%- set state = namespace(tools_shown=false) %}
{%- for message in conversation %}
{%- if message.role == 'user' and tools and not state.tools_shown %}
{%- set state.tools_shown = true %}
{{- '<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\nRespond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.\n\n' }}
{%- for tool in tools %}
{{- (tool | tojson(indent=4)) + '\n\n' }}
{%- endfor %}
{{- (message.content | trim) + '<|eot_id|>' }}
{%- elif message.role == 'assistant' and message.tool_calls %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- for call in message.tool_calls %}
{{- '{"name": "' + call.function.name + '", "parameters": ' + (call.function.arguments | tojson) + '}' }}
{%- endfor %}
{{- '<|eot_id|>' }}
{%- elif message.role == 'tool' or message.role == 'ipython' %}
{{- '<|start_header_id|>ipython<|end_header_id|>\n\n' + message.content + '<|eot_id|>' }}
{%- else %}
{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + (message.content | trim) + '<|eot_id|>' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}"#;

/// Ling (Bailing) V2: `<role>SYSTEM|HUMAN|ASSISTANT|OBSERVATION</role>` turns ended by `<|role_end|>`; tool
/// definitions in the system turn, calls in `<tool_call>` and results in `<tool_response>` tags.
const LING: &str = r#"{%- set system_text = messages[0].content if messages and messages[0].role == 'system' else '' %}
{%- if system_text or tools %}
{{- '<role>SYSTEM</role>' + system_text }}
{%- if tools %}
{%- if system_text %}
{{- '\n\n' }}
{%- endif %}
{{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
{%- for tool in tools %}
{{- '\n' + (tool | tojson) }}
{%- endfor %}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' }}
{%- endif %}
{{- '<|role_end|>' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}
{{- '<role>OBSERVATION</role>' }}
{%- endif %}
{{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}
{{- '<|role_end|>' }}
{%- endif %}
{%- elif message.role == 'assistant' %}
{{- '<role>ASSISTANT</role>' + message.content }}
{%- for call in message.tool_calls or [] %}
{{- '\n<tool_call>\n{"name": "' + call.function.name + '", "arguments": ' + (call.function.arguments | tojson) + '}\n</tool_call>' }}
{%- endfor %}
{{- '<|role_end|>' }}
{%- elif message.role == 'user' %}
{{- '<role>HUMAN</role>' + message.content + '<|role_end|>' }}
{%- else %}
{{- '<role>' + (message.role | upper) + '</role>' + message.content + '<|role_end|>' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<role>ASSISTANT</role>' }}
{%- endif %}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_compile() {
        for which in [BuiltinTemplate::ChatMl, BuiltinTemplate::Llama3, BuiltinTemplate::Ling] {
            let mut env = ChatTemplate::environment();
            env.add_template(DEFAULT, which.source()).unwrap();
        }
    }

    #[test]
    fn detects_fallback_from_architecture_and_tokens() {
        assert_eq!(BuiltinTemplate::detect("bailingmoe2", |_| false), BuiltinTemplate::Ling);
        assert_eq!(
            BuiltinTemplate::detect("llama", |t| t == "<|eot_id|>" || t == "<|start_header_id|>"),
            BuiltinTemplate::Llama3
        );
        assert_eq!(BuiltinTemplate::detect("qwen2", |_| false), BuiltinTemplate::ChatMl);
    }
}
