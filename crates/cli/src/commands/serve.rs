//! `finllm serve`: the OpenAI-compatible server.

use std::path::PathBuf;
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
    /// Serve this model in-process: a .gguf file, a Hugging Face folder or a name from `finllm models`
    /// (config key `server.model`)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Do not pull `server.default_model` when no model is configured (config key `server.download`)
    #[arg(long)]
    pub no_download: bool,
    /// Front an OpenAI-compatible server; repeat for failover (config key `server.upstreams`)
    #[arg(long = "upstream", value_name = "URL")]
    pub upstreams: Vec<String>,
    /// Serve the knowledge base in PostgreSQL with pgvector (postgres://...), shared by every server
    /// naming it, instead of <data_dir>/kb (config key `knowledge.database`)
    #[arg(long, value_name = "URL")]
    pub kb_database: Option<String>,
    /// PostgreSQL schema of that knowledge base (config key `knowledge.schema`)
    #[arg(long, value_name = "SCHEMA")]
    pub kb_schema: Option<String>,
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
        if self.no_download {
            flags.push(("server.download", "false".to_owned(), "--no-download"));
        }
        if !self.upstreams.is_empty() {
            flags.push(("server.upstreams", self.upstreams.join(","), "--upstream"));
        }
        if let Some(url) = &self.kb_database {
            flags.push(("knowledge.database", url.clone(), "--kb-database"));
        }
        if let Some(schema) = &self.kb_schema {
            flags.push(("knowledge.schema", schema.clone(), "--kb-schema"));
        }
        flags
    }
}

/// Starts the server and blocks until SIGTERM or Ctrl-C has drained in-flight requests.
pub fn run(config: &Config) -> anyhow::Result<()> {
    let engine = choose_model(config)?.map(|model| server::engine_backend::EngineConfig {
        model,
        kv_cache_bytes: config.server_kv_cache_mib * 1024 * 1024,
        max_context: config.server_max_context,
        scheduler: server::engine_backend::default_scheduler(),
    });
    if let Some(engine) = &engine {
        tracing::info!("loading {}", engine.model.display());
    }
    let server_config_has_no_engine = engine.is_none();
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
            judge: config.guard_judge.clone(),
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let bound = server::bind(server_config).await?;
        // The knowledge base `finllm kb add` fills, when there is one: /v1/kb and grounded answers. One
        // in PostgreSQL must open: a replica without its deployment's knowledge base would answer
        // ungrounded.
        let kb_dir = config.data_dir.join("kb");
        let options = server::kb::KnowledgeOptions {
            embed_api_key: config.knowledge_embed_api_key.clone(),
            ground_every_chat: config.knowledge_ground_every_chat,
        };
        if let Some(url) = &config.knowledge_database {
            let source = server::kb::KnowledgeSource::Postgres {
                url: url.clone(),
                schema: config.knowledge_schema.clone(),
                connections: config.knowledge_connections,
            };
            bound.attach_knowledge(&source, &options).await?;
            tracing::info!(
                "knowledge base in PostgreSQL (schema {}, {} connections) attached (/v1/kb)",
                config.knowledge_schema,
                config.knowledge_connections
            );
        } else if kb_dir.is_dir() {
            let source = server::kb::KnowledgeSource::Dir(kb_dir.clone());
            bound.attach_knowledge(&source, &options).await?;
            tracing::info!("knowledge base {} attached (/v1/kb)", kb_dir.display());
        }
        if let Some(addr) = bound.local_addr() {
            tracing::info!("finllm serve listening on http://{addr}");
        }
        if config.server_upstreams.is_empty() && server_config_has_no_engine {
            tracing::warn!("{}", server::backend::NO_MODEL_HINT);
        }
        bound.serve(server::shutdown_signal()).await?;
        tracing::info!("finllm serve stopped");
        anyhow::Ok(())
    })
}

/// The model to serve in-process: `server.model` (a path or a pulled name); else, with no upstreams either,
/// `server.default_model` from the data directory, pulled on first run unless `server.download` is off.
/// A failed pull (no network) is a warning: the server starts without a model.
fn choose_model(config: &Config) -> anyhow::Result<Option<PathBuf>> {
    if let Some(model) = &config.server_model {
        return Ok(Some(super::models::resolve(config, &model.to_string_lossy())?));
    }
    let Some(spec) = config.server_default_model.as_deref() else { return Ok(None) };
    if !config.server_upstreams.is_empty() {
        return Ok(None);
    }
    if let Ok(path) = engine::catalog::resolve(&config.data_dir, spec) {
        tracing::info!("no model configured: serving the default model {spec}");
        return Ok(Some(path));
    }
    if !config.server_download {
        tracing::warn!(
            "no model configured and the default model {spec} is not in {} (downloads are off); \
             starting without a model",
            engine::catalog::models_dir(&config.data_dir).display()
        );
        return Ok(None);
    }
    tracing::info!(
        "no model configured: pulling the default model {spec} (--no-download skips this)"
    );
    match super::pull::pull(config, spec, "main") {
        Ok(paths) => Ok(engine::catalog::resolve(&config.data_dir, spec).ok().or_else(|| {
            paths.iter().find(|p| p.extension().is_some_and(|e| e == "gguf")).cloned().or_else(
                || paths.first().and_then(|p| p.parent()).map(std::path::Path::to_path_buf),
            )
        })),
        Err(e) => {
            tracing::warn!(
                "could not download the default model {spec}: {e:#}; starting without a model \
                 (get one with `finllm pull {spec}` or pass --model PATH)"
            );
            Ok(None)
        }
    }
}
