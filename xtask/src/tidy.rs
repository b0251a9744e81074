//! Tidy checks: conventions that code review would otherwise have to remember.

use std::path::{Path, PathBuf};

use crate::layering;

/// Runs every tidy check and fails with the list of problems.
pub fn run() -> anyhow::Result<()> {
    let mut problems = layering::violations(&layering::workspace_graph()?);
    problems.extend(missing_module_docs(&workspace_root())?);
    anyhow::ensure!(problems.is_empty(), "tidy found problems:\n{}", problems.join("\n"));
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Every `.rs` file under `crates/*/src` and `xtask/src` must open with a `//!` comment saying why it exists.
fn missing_module_docs(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    for dir in [root.join("crates"), root.join("xtask")] {
        collect_rust_files(&dir, &mut files)?;
    }
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        if !text.trim_start().starts_with("//!") {
            let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
            problems
                .push(format!("{shown}: does not open with a `//!` comment saying why it exists"));
        }
    }
    Ok(problems)
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            // Build outputs, fuzz corpora and test fixtures are not modules.
            if !matches!(name, "target" | "fixtures" | "corpus" | "artifacts") {
                collect_rust_files(&path, files)?;
            }
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && path.components().any(|c| c.as_os_str() == "src")
        {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_opens_with_docs() {
        let problems = super::missing_module_docs(&super::workspace_root()).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
