//! An upstream OpenAI-compatible `/v1/embeddings` endpoint as the knowledge base's encoder, for models
//! that cannot run in-process (a Chinese or multilingual encoder served by vLLM, TEI, Ollama or a cloud
//! API). Vectors come back L2-normalised whatever the server does, so the vector index's dot product stays
//! the cosine. The endpoint's base URL is recorded with the vectors like a model folder is, so later
//! opens reconnect to it ([`load_recorded`]); an API key is never recorded.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    KnowledgeError, Result,
    embed::{BertEmbedder, Embedder},
};

/// Texts sent per request.
const BATCH: usize = 64;

/// An OpenAI-compatible embeddings endpoint.
#[derive(Debug)]
pub struct UpstreamEmbedder {
    /// `<base>/embeddings`.
    endpoint: String,
    base_url: String,
    model: String,
    api_key: Option<String>,
    dim: usize,
    agent: ureq::Agent,
}

/// Whether a recorded model location is an upstream base URL rather than a model folder.
pub fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

/// The embedder recorded as (`location`, `name`): an upstream endpoint when `location` is a URL (with
/// `api_key`, if it needs one), else a BERT-family model folder.
pub fn load_recorded(
    location: &str,
    name: &str,
    api_key: Option<&str>,
) -> Result<Box<dyn Embedder>> {
    if is_url(location) {
        Ok(Box::new(UpstreamEmbedder::connect(location, name, api_key.map(str::to_owned))?))
    } else {
        Ok(Box::new(BertEmbedder::load(std::path::Path::new(location))?))
    }
}

impl UpstreamEmbedder {
    /// Connects to `base_url` (e.g. `http://host:8000/v1`; requests go to `<base_url>/embeddings`) for
    /// `model`, and embeds one probe text to learn the dimension (so a wrong URL, model or key fails here,
    /// not halfway through an ingest).
    pub fn connect(base_url: &str, model: &str, api_key: Option<String>) -> Result<Self> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !is_url(&base_url) {
            return Err(KnowledgeError::BadInput(format!(
                "embedding endpoint {base_url:?}: use an http:// or https:// URL"
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut embedder = UpstreamEmbedder {
            endpoint: format!("{base_url}/embeddings"),
            base_url,
            model: model.to_owned(),
            api_key,
            dim: 0,
            agent,
        };
        let probe = embedder.request(&["dimension probe"])?;
        embedder.dim = probe.first().map_or(0, Vec::len);
        if embedder.dim == 0 {
            return Err(embedder.error("returned an empty vector"));
        }
        Ok(embedder)
    }

    /// The base URL (what is recorded with the vectors).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn error(&self, what: impl std::fmt::Display) -> KnowledgeError {
        KnowledgeError::BadInput(format!("embedding endpoint {}: {what}", self.endpoint))
    }

    fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let body = json!({"model": self.model, "input": texts, "encoding_format": "float"});
        let mut request =
            self.agent.post(&self.endpoint).header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let mut response = request.send(body.to_string().as_bytes()).map_err(|e| self.error(e))?;
        let status = response.status().as_u16();
        let payload = response.body_mut().read_to_string().map_err(|e| self.error(e))?;
        if status != 200 {
            let snippet: String = payload.chars().take(200).collect();
            return Err(self.error(format!("HTTP {status}: {snippet}")));
        }
        let value: Value =
            serde_json::from_str(&payload).map_err(|e| self.error(format!("not JSON: {e}")))?;
        let data = value["data"].as_array().ok_or_else(|| self.error("no `data` list"))?;
        if data.len() != texts.len() {
            return Err(self.error(format!("{} vectors for {} texts", data.len(), texts.len())));
        }
        let mut out = vec![Vec::new(); texts.len()];
        for (n, item) in data.iter().enumerate() {
            // Servers may return the items in any order: `index` says which text each is for.
            let index = item["index"].as_u64().map_or(n, |i| i as usize);
            let vector: Vec<f32> = item["embedding"]
                .as_array()
                .ok_or_else(|| self.error(format!("data[{n}] has no `embedding` list")))?
                .iter()
                .map(|x| x.as_f64().map(|x| x as f32))
                .collect::<Option<_>>()
                .ok_or_else(|| self.error(format!("data[{n}].embedding holds a non-number")))?;
            let slot = out.get_mut(index).ok_or_else(|| self.error(format!("index {index}")))?;
            *slot = normalised(vector);
        }
        if self.dim > 0 && out.iter().any(|v| v.len() != self.dim) {
            return Err(self.error(format!("a vector is not {}-dimensional", self.dim)));
        }
        Ok(out)
    }
}

/// `v` scaled to unit length (a zero vector stays zero).
fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

impl Embedder for UpstreamEmbedder {
    fn name(&self) -> &str {
        &self.model
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            out.extend(self.request(batch)?);
        }
        Ok(out)
    }
}
