//! The crate layering rule, checked against `cargo metadata`.
//!
//! Layers point down only. Every workspace crate is assigned a layer here; a crate missing from the table
//! is itself a violation, so a new crate cannot slip past the rule.

use std::collections::BTreeMap;

/// Where a crate sits, and so what it may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// Shared vocabulary and text utilities: depend on no workspace crate but each other's lower rows.
    Foundation,
    /// Capabilities that never see each other: engine, guard, knowledge, finance.
    Capability,
    /// Reaches models through a backend trait or HTTP, never the engine itself: eval, redteam.
    Harness,
    /// The only crate that serves HTTP.
    Server,
    /// Binaries and automation: nothing depends on them.
    Binary,
}

fn layer_of(name: &str) -> Option<Layer> {
    Some(match name {
        "types" | "text" => Layer::Foundation,
        "engine" | "guard" | "knowledge" | "finance" => Layer::Capability,
        "eval" | "redteam" => Layer::Harness,
        "server" => Layer::Server,
        "cli" | "xtask" => Layer::Binary,
        _ => return None,
    })
}

/// Why the edge `from -> to` is forbidden, or `None` when it is allowed.
fn forbidden(from: &str, to: &str) -> Option<&'static str> {
    let (Some(from_layer), Some(to_layer)) = (layer_of(from), layer_of(to)) else {
        return Some("crate is not assigned a layer in xtask/src/layering.rs");
    };
    match (from_layer, to_layer) {
        (_, Layer::Binary) => Some("nothing may depend on a binary crate"),
        (Layer::Foundation, Layer::Foundation) if from == "types" => {
            Some("types is the bottom layer and depends on no workspace crate")
        }
        (Layer::Foundation, Layer::Foundation) => None,
        (Layer::Foundation, _) => Some("foundation crates depend only on foundation crates"),
        (Layer::Capability, Layer::Foundation) => None,
        (Layer::Capability, _) => Some(
            "engine, guard, knowledge and finance never depend on each other or on anything above them",
        ),
        (Layer::Harness, Layer::Server) => {
            Some("eval and redteam reach a server over HTTP, not by linking it")
        }
        (Layer::Harness, _) if to == "engine" => {
            Some("eval and redteam reach models through a backend trait or HTTP, not the engine")
        }
        (Layer::Harness, Layer::Harness) => Some("eval and redteam are siblings"),
        (Layer::Harness, _) => None,
        (Layer::Server, Layer::Server) => None,
        (Layer::Server, Layer::Harness) => Some("the server does not depend on eval or redteam"),
        (Layer::Server, _) => None,
        (Layer::Binary, _) => None,
    }
}

/// A workspace crate and the workspace crates it depends on (any dependency kind).
pub type Graph = BTreeMap<String, Vec<String>>;

/// Every forbidden edge, as human-readable lines.
pub fn violations(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for (from, deps) in graph {
        if layer_of(from).is_none() {
            found.push(format!("{from}: crate is not assigned a layer in xtask/src/layering.rs"));
        }
        for to in deps {
            if let Some(why) = forbidden(from, to) {
                found.push(format!("{from} -> {to}: {why}"));
            }
        }
    }
    found
}

/// Reads the workspace's dependency graph (workspace members only) from `cargo metadata`.
pub fn workspace_graph() -> anyhow::Result<Graph> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Metadata = serde_json::from_slice(&output.stdout)?;
    let members: Vec<&str> = metadata.packages.iter().map(|p| p.name.as_str()).collect();
    let graph = metadata
        .packages
        .iter()
        .map(|package| {
            let deps = package
                .dependencies
                .iter()
                .filter(|dep| dep.path.is_some() && members.contains(&dep.name.as_str()))
                .map(|dep| dep.name.clone())
                .collect();
            (package.name.clone(), deps)
        })
        .collect();
    Ok(graph)
}

#[derive(serde::Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(serde::Deserialize)]
struct Package {
    name: String,
    dependencies: Vec<Dependency>,
}

#[derive(serde::Deserialize)]
struct Dependency {
    name: String,
    path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(edges: &[(&str, &str)], expect: &[&str]) {
        let mut graph = Graph::new();
        for (from, to) in edges {
            graph.entry((*from).to_owned()).or_default().push((*to).to_owned());
            graph.entry((*to).to_owned()).or_default();
        }
        let found = violations(&graph);
        let found: Vec<&str> =
            found.iter().map(|line| line.split(':').next().unwrap_or("")).collect();
        assert_eq!(found, expect);
    }

    #[test]
    fn allowed_edges_pass() {
        check(
            &[
                ("text", "types"),
                ("engine", "types"),
                ("guard", "text"),
                ("knowledge", "text"),
                ("server", "engine"),
                ("server", "guard"),
                ("redteam", "guard"),
                ("eval", "types"),
                ("cli", "server"),
                ("cli", "eval"),
                ("xtask", "types"),
            ],
            &[],
        );
    }

    #[test]
    fn forbidden_edges_are_caught() {
        check(&[("engine", "guard")], &["engine -> guard"]);
        check(&[("knowledge", "finance")], &["knowledge -> finance"]);
        check(&[("guard", "server")], &["guard -> server"]);
        check(&[("server", "cli")], &["server -> cli"]);
        check(&[("eval", "engine")], &["eval -> engine"]);
        check(&[("redteam", "server")], &["redteam -> server"]);
        check(&[("types", "text")], &["types -> text"]);
        check(&[("text", "guard")], &["text -> guard"]);
    }

    #[test]
    fn unassigned_crates_are_caught() {
        check(&[("newcrate", "types")], &["newcrate", "newcrate -> types"]);
    }

    #[test]
    fn workspace_follows_the_layering_rule() {
        let graph = workspace_graph().unwrap();
        assert!(
            graph.contains_key("types") && graph.contains_key("cli"),
            "unexpected graph: {graph:?}"
        );
        let found = violations(&graph);
        assert!(found.is_empty(), "layering violations:\n{}", found.join("\n"));
    }
}
