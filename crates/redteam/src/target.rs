//! What a campaign attacks: the [`Target`] trait and its three kinds — any OpenAI-compatible chat
//! endpoint (`finllm serve`, vLLM, a vendor API), the guard alone (measuring its recall under attack),
//! and a raw HTTP endpoint described by a request template (an in-house chatbot API).
//!
//! Multi-turn attacks whose user turns must be asked one by one (`user_turns_sequential`) are sent turn
//! by turn: each answer goes back into the conversation before the next user turn, replacing any
//! assistant turn the strategy wrote in advance.

use std::{collections::BTreeMap, fmt, sync::Arc};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    RedteamError,
    attack::{Attack, Turn},
    http::{Client, Pacing, v1_base},
};

/// What the target did with one attack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The target's last answer.
    pub text: String,
    /// The whole conversation as it happened, the target's answers included.
    pub transcript: Vec<Turn>,
    /// A guard in front of the model stopped the request or the answer (`content_filter`, or the
    /// guard target's unsafe verdict).
    pub blocked: bool,
    /// Tokens the target reported using (prompt + completion), 0 when it does not say.
    pub tokens: u64,
    /// HTTP tries over all turns (retries included).
    pub tries: u32,
}

/// Something that answers attacks.
pub trait Target: Send + Sync + fmt::Debug {
    /// A short description for reports (`openai:qwen2@http://…`, `guard`, `http:POST …`).
    fn describe(&self) -> String;
    /// Sends `attack` and returns what came back.
    fn send<'a>(&'a self, attack: &'a Attack) -> BoxFuture<'a, Result<Reply, RedteamError>>;
}

/// Which kind of target a campaign attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// An OpenAI-compatible `/v1/chat/completions` endpoint.
    Openai,
    /// The guard's input check, in process: success means the guard let the attack through.
    Guard,
    /// A raw HTTP endpoint described by a request template.
    Http,
}

/// The `[target]` table of a campaign file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetConfig {
    /// `openai`, `guard` or `http`.
    pub kind: TargetKind,
    /// OpenAI: base URL (`http://127.0.0.1:8080` or `…/v1`).
    #[serde(default)]
    pub base_url: String,
    /// OpenAI: the model name sent.
    #[serde(default = "default_model")]
    pub model: String,
    /// Bearer token. Campaign files name an environment variable instead (`api_key_env`); the CLI
    /// resolves it into this field, so keys never sit in campaign files or reports.
    #[serde(default, skip_serializing)]
    pub api_key: Option<String>,
    /// Environment variable holding the bearer token.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Extra request headers (tenant ids, vendor headers).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// OpenAI: a system message put before every attack.
    #[serde(default)]
    pub system: Option<String>,
    /// OpenAI: `max_tokens` per answer.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// OpenAI: sampling temperature.
    #[serde(default)]
    pub temperature: f64,
    /// HTTP: method.
    #[serde(default = "default_method")]
    pub method: String,
    /// HTTP: URL.
    #[serde(default)]
    pub url: String,
    /// HTTP: JSON body template; `{{prompt}}` (inside a JSON string) becomes the user turn and
    /// `{{messages}}` (as a whole value) the conversation as an array of `{role, content}`.
    #[serde(default)]
    pub body: String,
    /// HTTP: JSON pointer to the answer text in the response (`/choices/0/message/content`); empty
    /// takes the whole body.
    #[serde(default)]
    pub reply_pointer: String,
    /// HTTP: JSON pointer to a boolean saying a guard blocked the request (optional).
    #[serde(default)]
    pub blocked_pointer: String,
    /// Rate limit, concurrency, timeout and retries.
    #[serde(flatten)]
    pub pacing: Pacing,
}

fn default_model() -> String {
    "default".into()
}
fn default_max_tokens() -> u32 {
    256
}
fn default_method() -> String {
    "POST".into()
}

/// Builds the target a campaign describes; the guard target uses `guard` (the CLI loads it with the
/// configured model and policy).
pub fn build(
    config: &TargetConfig,
    guard: Option<(Arc<guard::Guard>, guard::Policy)>,
) -> Result<Arc<dyn Target>, RedteamError> {
    let bad = |message: &str| RedteamError::Config {
        path: "[target]".into(),
        message: message.to_owned(),
    };
    Ok(match config.kind {
        TargetKind::Openai => {
            if config.base_url.is_empty() {
                return Err(bad("an openai target needs `base_url`"));
            }
            Arc::new(OpenAiTarget::new(config)?)
        }
        TargetKind::Http => {
            if config.url.is_empty() || config.body.is_empty() {
                return Err(bad("an http target needs `url` and a `body` template"));
            }
            if !config.body.contains("{{prompt}}") && !config.body.contains("{{messages}}") {
                return Err(bad(
                    "the http `body` template has neither {{prompt}} nor {{messages}}",
                ));
            }
            Arc::new(HttpTarget::new(config)?)
        }
        TargetKind::Guard => {
            let (guard, policy) =
                match guard {
                    Some(g) => g,
                    None => (
                        Arc::new(guard::Guard::builtin().map_err(|e| {
                            RedteamError::Endpoint(format!("loading the guard: {e}"))
                        })?),
                        guard::Policy::default(),
                    ),
                };
            Arc::new(GuardTarget { guard, policy })
        }
    })
}

fn headers_of(config: &TargetConfig) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> =
        config.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(key) = config.api_key.as_deref().filter(|k| !k.is_empty()) {
        headers.push(("Authorization".into(), format!("Bearer {key}")));
    }
    headers
}

/// Walks an attack's turns, asking `ask` for an answer after each user turn that the target must
/// answer: only the last one normally, every one when the attack is sequential. Returns the
/// transcript, the last answer and whether any answer was blocked.
async fn converse<'a, F, Fut>(
    attack: &'a Attack,
    system: Option<&'a str>,
    mut ask: F,
) -> Result<Reply, RedteamError>
where
    F: FnMut(Vec<Turn>) -> Fut,
    Fut: Future<Output = Result<Reply, RedteamError>>,
{
    let mut history: Vec<Turn> = system.map(|s| vec![Turn::system(s)]).unwrap_or_default();
    let mut reply = Reply::default();
    if !attack.user_turns_sequential {
        history.extend(attack.turns.iter().cloned());
        let answer = ask(history.clone()).await?;
        history.push(Turn::assistant(answer.text.clone()));
        return Ok(Reply { transcript: history, ..answer });
    }
    for turn in &attack.turns {
        match turn.role.as_str() {
            // The target writes its own answers; scripted ones are dropped.
            "assistant" => {}
            "user" => {
                history.push(turn.clone());
                let answer = ask(history.clone()).await?;
                history.push(Turn::assistant(answer.text.clone()));
                reply.tokens += answer.tokens;
                reply.tries += answer.tries;
                reply.blocked |= answer.blocked;
                reply.text = answer.text;
            }
            _ => history.push(turn.clone()),
        }
    }
    reply.transcript = history;
    Ok(reply)
}

/// An OpenAI-compatible chat endpoint.
#[derive(Debug)]
pub struct OpenAiTarget {
    client: Client,
    url: String,
    model: String,
    headers: Vec<(String, String)>,
    system: Option<String>,
    max_tokens: u32,
    temperature: f64,
}

impl OpenAiTarget {
    /// A target for the endpoint `config` describes.
    pub fn new(config: &TargetConfig) -> Result<OpenAiTarget, RedteamError> {
        Ok(OpenAiTarget {
            client: Client::new(config.pacing.clone())?,
            url: format!("{}/chat/completions", v1_base(&config.base_url)),
            model: config.model.clone(),
            headers: headers_of(config),
            system: config.system.clone(),
            max_tokens: config.max_tokens,
            temperature: config.temperature,
        })
    }

    async fn ask(&self, messages: Vec<Turn>) -> Result<Reply, RedteamError> {
        let body = json!({"model": self.model, "messages": messages,
            "max_tokens": self.max_tokens, "temperature": self.temperature});
        let response = self.client.send("POST", &self.url, &self.headers, Some(&body)).await?;
        let (text, blocked, tokens) = parse_chat(&response.body).ok_or_else(|| {
            RedteamError::Endpoint(format!(
                "{}: no choices[0].message.content in {}",
                self.url,
                truncate(&response.body.to_string(), 300)
            ))
        })?;
        Ok(Reply { text, blocked, tokens, tries: response.tries, transcript: Vec::new() })
    }
}

/// The answer text, whether it was filtered, and the tokens used, from a chat completion.
pub fn parse_chat(body: &Value) -> Option<(String, bool, u64)> {
    let choice = body.get("choices")?.get(0)?;
    let text = match choice.get("message")?.get("content")? {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        _ => return None,
    };
    let blocked = choice.get("finish_reason").and_then(Value::as_str) == Some("content_filter");
    let tokens = body.pointer("/usage/total_tokens").and_then(Value::as_u64).unwrap_or(0);
    Some((text, blocked, tokens))
}

fn truncate(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

impl Target for OpenAiTarget {
    fn describe(&self) -> String {
        format!("openai:{}@{}", self.model, self.url)
    }

    fn send<'a>(&'a self, attack: &'a Attack) -> BoxFuture<'a, Result<Reply, RedteamError>> {
        Box::pin(converse(attack, self.system.as_deref(), move |messages| self.ask(messages)))
    }
}

/// A raw HTTP endpoint described by a request template.
#[derive(Debug)]
pub struct HttpTarget {
    client: Client,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
    reply_pointer: String,
    blocked_pointer: String,
}

impl HttpTarget {
    /// A target for the template `config` describes.
    pub fn new(config: &TargetConfig) -> Result<HttpTarget, RedteamError> {
        Ok(HttpTarget {
            client: Client::new(config.pacing.clone())?,
            method: config.method.clone(),
            url: config.url.clone(),
            headers: headers_of(config),
            body: config.body.clone(),
            reply_pointer: config.reply_pointer.clone(),
            blocked_pointer: config.blocked_pointer.clone(),
        })
    }

    async fn ask(&self, messages: Vec<Turn>) -> Result<Reply, RedteamError> {
        let body = render_body(&self.body, &messages)?;
        let response =
            self.client.send(&self.method, &self.url, &self.headers, Some(&body)).await?;
        let text = if self.reply_pointer.is_empty() {
            match &response.body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        } else {
            match response.body.pointer(&self.reply_pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => {
                    return Err(RedteamError::Endpoint(format!(
                        "{}: no `{}` in {}",
                        self.url,
                        self.reply_pointer,
                        truncate(&response.body.to_string(), 300)
                    )));
                }
            }
        };
        let blocked = !self.blocked_pointer.is_empty()
            && response.body.pointer(&self.blocked_pointer).and_then(Value::as_bool) == Some(true);
        Ok(Reply { text, blocked, tokens: 0, tries: response.tries, transcript: Vec::new() })
    }
}

/// The request body for `messages`: the template with `{{prompt}}` replaced by the last user turn
/// (JSON-escaped, so it belongs inside a JSON string) and `{{messages}}` by the conversation.
pub fn render_body(template: &str, messages: &[Turn]) -> Result<Value, RedteamError> {
    let prompt =
        messages.iter().rev().find(|t| t.role == "user").map_or("", |t| t.content.as_str());
    let escaped =
        serde_json::to_string(prompt).map_err(|e| RedteamError::Endpoint(e.to_string()))?;
    let escaped = &escaped[1..escaped.len() - 1];
    let conversation =
        serde_json::to_string(messages).map_err(|e| RedteamError::Endpoint(e.to_string()))?;
    let text = template.replace("{{prompt}}", escaped).replace("{{messages}}", &conversation);
    serde_json::from_str(&text).map_err(|e| RedteamError::Config {
        path: "[target] body".into(),
        message: format!("the template is not JSON once filled in: {e}"),
    })
}

impl Target for HttpTarget {
    fn describe(&self) -> String {
        format!("http:{} {}", self.method, self.url)
    }

    fn send<'a>(&'a self, attack: &'a Attack) -> BoxFuture<'a, Result<Reply, RedteamError>> {
        Box::pin(converse(attack, None, move |messages| self.ask(messages)))
    }
}

/// The guard's input check alone: the attack "succeeds" when the guard lets it through.
#[derive(Debug)]
pub struct GuardTarget {
    guard: Arc<guard::Guard>,
    policy: guard::Policy,
}

impl GuardTarget {
    /// The guard target over a loaded guard and policy.
    pub fn new(guard: Arc<guard::Guard>, policy: guard::Policy) -> GuardTarget {
        GuardTarget { guard, policy }
    }

    /// The verdict on the whole conversation, as the server's input guard would judge it.
    pub fn judge(&self, attack: &Attack) -> guard::Judgement {
        let conversation = guard::Conversation {
            turns: attack
                .turns
                .iter()
                .map(|t| guard::Turn { role: t.role.clone(), content: t.content.clone() })
                .collect(),
        };
        self.guard.check_conversation(&conversation, &self.policy)
    }
}

impl Target for GuardTarget {
    fn describe(&self) -> String {
        "guard".into()
    }

    fn send<'a>(&'a self, attack: &'a Attack) -> BoxFuture<'a, Result<Reply, RedteamError>> {
        let judgement = self.judge(attack);
        let blocked = judgement.verdict == guard::Verdict::Unsafe;
        let text = format!(
            "[guard] verdict={} intents={} techniques={}",
            judgement.verdict.as_str(),
            judgement.intents.join(","),
            judgement.techniques.join(",")
        );
        let mut transcript = attack.turns.clone();
        transcript.push(Turn::assistant(text.clone()));
        Box::pin(async move { Ok(Reply { text, transcript, blocked, tokens: 0, tries: 1 }) })
    }
}
