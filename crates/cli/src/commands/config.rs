//! `finllm config`: the merged configuration, each value with its source.

use std::io::Write;

use crate::config::{Kind, Resolved, env_var};

/// Arguments of `finllm config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print JSON objects (key, value, source, env) instead of annotated TOML
    #[arg(long)]
    json: bool,
}

/// Prints the configuration as TOML that can be pasted into `finllm.toml`, or as JSON.
pub fn run(args: &ConfigArgs, resolved: &Resolved) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = resolved
            .entries()
            .map(|(setting, value, source)| {
                serde_json::json!({
                    "key": setting.key,
                    "value": if matches!(setting.kind, Kind::Secret) && !value.is_empty() { "***" } else { value },
                    "source": source.to_string(),
                    "env": env_var(setting.key),
                    "help": setting.help,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut section = "";
    for (setting, value, source) in resolved.entries() {
        let (table, key) = setting.key.rsplit_once('.').unwrap_or(("", setting.key));
        if table != section {
            writeln!(out, "\n[{table}]")?;
            section = table;
        }
        let literal = match setting.kind {
            Kind::Port | Kind::Integer { .. } | Kind::Bool => value.to_owned(),
            Kind::Urls => {
                let items: Vec<String> =
                    value.split(',').filter(|u| !u.is_empty()).map(|u| format!("{u:?}")).collect();
                format!("[{}]", items.join(", "))
            }
            Kind::Secret if !value.is_empty() => "\"***\"".to_owned(),
            Kind::Path
            | Kind::OptionalPath
            | Kind::Host
            | Kind::Choice(_)
            | Kind::DatabaseUrl
            | Kind::PostgresUrl
            | Kind::Identifier
            | Kind::Url
            | Kind::OptionalUrl
            | Kind::Text
            | Kind::Secret => {
                format!("{value:?}")
            }
        };
        writeln!(out, "{:<36} # {source}; {}", format!("{key} = {literal}"), setting.help)?;
    }
    Ok(())
}
