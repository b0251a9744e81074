//! `finllm keys`: create, list and revoke the API keys `finllm serve` accepts.

use std::io::Write;

use server::{Store, keys::NewKey};

use crate::config::Config;

/// Arguments of `finllm keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Debug, clap::Subcommand)]
enum KeysAction {
    /// Create a key; its secret is printed once and never stored
    Create {
        /// A name for people
        #[arg(long)]
        name: String,
        /// The tenant the key acts for (recorded in the audit trail)
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Models the key may use, comma-separated [default: all]
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Requests per minute [default: unlimited]
        #[arg(long)]
        rpm: Option<u32>,
        /// Tokens per minute [default: unlimited]
        #[arg(long)]
        tpm: Option<u32>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; it stops working at once
    Revoke {
        /// The key id, as `finllm keys list` shows it
        id: String,
    },
}

/// Runs a keys action against the configured database.
pub fn run(args: &KeysArgs, config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(&config.database).await?;
        let mut out = std::io::stdout().lock();
        match &args.action {
            KeysAction::Create { name, tenant, models, rpm, tpm, json } => {
                let new = NewKey {
                    name: name.clone(),
                    tenant: tenant.clone(),
                    models: models.iter().filter(|m| !m.is_empty()).cloned().collect(),
                    requests_per_minute: *rpm,
                    tokens_per_minute: *tpm,
                };
                let (record, secret) = server::keys::create(&store, new).await?;
                if *json {
                    let value =
                        serde_json::json!({"id": record.id, "secret": secret, "key": record});
                    writeln!(out, "{value}")?;
                } else {
                    writeln!(out, "created {} for tenant {}", record.id, record.tenant)?;
                    writeln!(out, "secret (shown once, store it now): {secret}")?;
                }
            }
            KeysAction::List { json } => {
                let keys = store.list_keys().await?;
                if *json {
                    serde_json::to_writer_pretty(&mut out, &keys)?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "{:<18} {:<16} {:<12} {:<9} {:<9} {:<24} status",
                        "id", "name", "tenant", "rpm", "tpm", "models"
                    )?;
                    for key in keys {
                        let limit =
                            |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
                        let models = if key.models.is_empty() {
                            "*".to_owned()
                        } else {
                            key.models.join(",")
                        };
                        let status = key
                            .revoked_at
                            .map_or_else(|| "active".to_owned(), |at| format!("revoked {at}"));
                        writeln!(
                            out,
                            "{:<18} {:<16} {:<12} {:<9} {:<9} {:<24} {status}",
                            key.id,
                            key.name,
                            key.tenant,
                            limit(key.requests_per_minute),
                            limit(key.tokens_per_minute),
                            models
                        )?;
                    }
                }
            }
            KeysAction::Revoke { id } => {
                store.revoke_key(id, types::Timestamp::now().to_string()).await?;
                writeln!(out, "revoked {id}")?;
            }
        }
        anyhow::Ok(())
    })
}
