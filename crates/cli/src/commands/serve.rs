//! `finllm serve`: the OpenAI-compatible server.

use std::time::Duration;

use crate::config::Config;

/// Arguments of `finllm serve`; each flag overrides its configuration key.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (config key `server.host`)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Port to listen on (config key `server.port`)
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Serve this model in-process: a .gguf file or a Hugging Face folder (config key `server.model`)
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,
    /// Front an OpenAI-compatible server; repeat for failover (config key `server.upstreams`)
    #[arg(long = "upstream", value_name = "URL")]
    pub upstreams: Vec<String>,
}

impl ServeArgs {
    /// The configuration layer these flags form.
    pub fn flags(&self) -> Vec<(&'static str, String, &'static str)> {
        let mut flags = Vec::new();
        if let Some(host) = &self.host {
            flags.push(("server.host", host.clone(), "--host"));
        }
        if let Some(model) = &self.model {
            flags.push(("server.model", model.clone(), "--model"));
        }
        if let Some(port) = &self.port {
            flags.push(("server.port", port.clone(), "--port"));
        }
        if !self.upstreams.is_empty() {
            flags.push(("server.upstreams", self.upstreams.join(","), "--upstream"));
        }
        flags
    }
}

/// Starts the server and blocks until SIGTERM or Ctrl-C has drained in-flight requests.
pub fn run(config: &Config) -> anyhow::Result<()> {
    let engine = config.server_model.as_ref().map(|model| server::engine_backend::EngineConfig {
        model: model.clone(),
        kv_cache_bytes: config.server_kv_cache_mib * 1024 * 1024,
        max_context: config.server_max_context,
        scheduler: server::engine_backend::default_scheduler(),
    });
    if let Some(engine) = &engine {
        tracing::info!("loading {}", engine.model.display());
    }
    let server_config = server::ServerConfig {
        engine,
        host: config.server_host.clone(),
        port: config.server_port,
        upstreams: config
            .server_upstreams
            .iter()
            .map(|url| server::UpstreamConfig {
                url: url.clone(),
                api_key: None,
                models: Vec::new(),
            })
            .collect(),
        upstream_timeout: Duration::from_secs(config.server_upstream_timeout_secs),
        upstream_retries: config.server_upstream_retries,
        body_limit: config.server_max_body_bytes,
        database: config.database.clone(),
        audit_fail_open: config.audit_fail_open,
        assistant_tools: config.server_assistant_tools,
        guard: config.guard_enabled.then(|| server::guard_layer::GuardConfig {
            model: config.guard_model.clone(),
            policy: config.guard_policy.clone(),
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let bound = server::bind(server_config).await?;
        if let Some(addr) = bound.local_addr() {
            tracing::info!("finllm serve listening on http://{addr}");
        }
        if config.server_upstreams.is_empty() && config.server_model.is_none() {
            tracing::warn!("{}", server::backend::NO_MODEL_HINT);
        }
        bound.serve(server::shutdown_signal()).await?;
        tracing::info!("finllm serve stopped");
        anyhow::Ok(())
    })
}
