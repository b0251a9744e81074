//! Downloads from a local imitation of the hub: listing with pagination, choosing files, redirects,
//! resuming a `.part` and a dropped transfer with `Range`, checksum failures, 404/401 and an unreachable
//! hub each give their own error; and the catalog finds and resolves what was pulled.

use std::path::Path;

use engine::catalog::{self, Format};
use engine::hub::{HubClient, HubError, Progress, PullSpec, RemoteFile, select_files};

use crate::fake_hub::{FakeFile, FakeHub, FakeRepo, Quirk, files_of};
use crate::fixtures::fixture;

fn blob(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn repo(name: &str, files: Vec<FakeFile>) -> FakeRepo {
    FakeRepo { name: name.to_owned(), files, token: None }
}

fn pull(client: &HubClient, spec: &str, dir: &Path) -> Result<Vec<std::path::PathBuf>, HubError> {
    let spec = PullSpec::parse(spec)?;
    let files = client.list_files(&spec.repo, "main")?;
    let chosen = select_files(&spec, &files)?;
    let dest = engine::hub::repo_dir(dir, &spec.repo);
    let mut events = Vec::new();
    let out = chosen
        .iter()
        .map(|f| client.download(&spec.repo, "main", f, &dest, &mut |p| events.push(p)))
        .collect::<Result<Vec<_>, _>>()?;
    // Every byte reported arrived: progress adds up to the sizes (counting resumed starts).
    let advanced: u64 =
        events.iter().map(|e| if let Progress::Advance(n) = e { *n } else { 0 }).sum();
    assert!(advanced <= chosen.iter().map(|f| f.size).sum::<u64>() * 2, "{events:?}");
    Ok(out)
}

#[test]
fn lists_paginated_trees_and_pulls_a_checkpoint_folder() {
    let mut files = files_of(&fixture("llama/hf"));
    files.push(FakeFile::new("README.md", b"# tiny".to_vec()));
    files.push(FakeFile::new("onnx/model.onnx", blob(100, 1)));
    let n_files = files.len();
    let hub = FakeHub::start(vec![repo("tiny/llama", files)]);
    let client = HubClient::new(&hub.endpoint, None);
    let listed = client.list_files("tiny/llama", "main").unwrap();
    assert_eq!(listed.len(), n_files, "every page was followed");
    assert!(hub.log().iter().any(|l| l.contains("cursor=3")), "{:?}", hub.log());

    let data = tempfile::tempdir().unwrap();
    let got = pull(&client, "tiny/llama", data.path()).unwrap();
    let names: Vec<String> =
        got.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(
        names.contains(&"config.json".to_owned())
            && names.contains(&"model.safetensors".to_owned())
    );
    assert!(!names.iter().any(|n| n == "README.md" || n == "model.onnx"), "{names:?}");
    for p in &got {
        let src = fixture("llama/hf").join(p.file_name().unwrap());
        assert_eq!(std::fs::read(p).unwrap(), std::fs::read(src).unwrap());
    }

    // The catalog sees a safetensors folder and resolves it by repository name; it loads.
    let models = catalog::scan(data.path());
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!((models[0].name.as_str(), models[0].format), ("tiny/llama", Format::Safetensors));
    assert_eq!(models[0].architecture.as_deref(), Some("llama"));
    let path = catalog::resolve(data.path(), "tiny/llama").unwrap();
    engine::model::load(&path, &engine::model::LoadOptions { warm_up: false }).unwrap();

    // A second pull finds everything verified in place and downloads nothing.
    let before = hub.log().iter().filter(|l| l.contains("/resolve/")).count();
    pull(&client, "tiny/llama", data.path()).unwrap();
    let after = hub.log().iter().filter(|l| l.contains("/resolve/")).count();
    assert_eq!(before, after);
}

#[test]
fn quant_choice_redirect_and_catalog_names() {
    let q8 = std::fs::read(fixture("qwen2/model-q8_0.gguf")).unwrap();
    let f32 = std::fs::read(fixture("qwen2/model-f32.gguf")).unwrap();
    let hub = FakeHub::start(vec![repo(
        "tiny/qwen2-GGUF",
        vec![
            FakeFile::new("tiny-q8_0.gguf", q8.clone()).quirk(Quirk::Redirect),
            FakeFile::new("tiny-f32.gguf", f32),
        ],
    )]);
    let client = HubClient::new(&hub.endpoint, None);
    let data = tempfile::tempdir().unwrap();
    let err = pull(&client, "tiny/qwen2-GGUF", data.path()).unwrap_err();
    assert!(err.to_string().contains("several GGUF files"), "{err}");
    let got = pull(&client, "tiny/qwen2-GGUF:Q8_0", data.path()).unwrap();
    assert_eq!(std::fs::read(&got[0]).unwrap(), q8);
    assert!(hub.log().iter().any(|l| l.starts_with("GET /cdn/tiny/qwen2-GGUF/tiny-q8_0.gguf")));
    pull(&client, "tiny/qwen2-GGUF/tiny-f32.gguf", data.path()).unwrap();

    let models = catalog::scan(data.path());
    let described: Vec<(&str, Option<&str>, Option<&str>)> = models
        .iter()
        .map(|m| (m.name.as_str(), m.architecture.as_deref(), m.quant.as_deref()))
        .collect();
    assert_eq!(
        described,
        vec![
            ("tiny/qwen2-GGUF/tiny-f32.gguf", Some("qwen2"), Some("F32")),
            ("tiny/qwen2-GGUF/tiny-q8_0.gguf", Some("qwen2"), Some("Q8_0")),
        ]
    );
    let check = |name: &str, expect: Result<&str, &str>| match (
        catalog::resolve(data.path(), name),
        expect,
    ) {
        (Ok(p), Ok(file)) => assert!(p.ends_with(file), "{name}: {p:?}"),
        (Err(e), Err(fragment)) => assert!(e.to_string().contains(fragment), "{name}: {e}"),
        (got, want) => panic!("{name}: {got:?} vs {want:?}"),
    };
    check("tiny/qwen2-GGUF:Q8_0", Ok("tiny-q8_0.gguf"));
    check("tiny/qwen2-GGUF:f32", Ok("tiny-f32.gguf"));
    check("tiny/qwen2-GGUF/tiny-f32.gguf", Ok("tiny-f32.gguf"));
    check("tiny-q8_0.gguf", Ok("tiny-q8_0.gguf"));
    check("tiny/qwen2-GGUF", Err("matches several models"));
    check("nope/nope", Err("finllm pull"));
    let fixture_path = fixture("qwen2/model-f32.gguf").display().to_string();
    check(&fixture_path, Ok("model-f32.gguf"));
}

#[test]
fn dropped_transfers_resume_with_range() {
    let big = blob(700_000, 7);
    let hub = FakeHub::start(vec![repo(
        "a/drop",
        vec![FakeFile::new("m.gguf", big.clone()).quirk(Quirk::DropAfter(300_000))],
    )]);
    let client = HubClient::new(&hub.endpoint, None);
    let data = tempfile::tempdir().unwrap();
    let got = pull(&client, "a/drop/m.gguf", data.path()).unwrap();
    assert_eq!(std::fs::read(&got[0]).unwrap(), big);
    let gets: Vec<String> = hub.log().into_iter().filter(|l| l.contains("/resolve/")).collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets[1].ends_with("range=300000-"), "resumed where the drop left off: {gets:?}");
    assert!(!got[0].with_extension("gguf.part").exists());
}

#[test]
fn a_part_file_from_an_earlier_run_is_resumed_or_restarted() {
    let big = blob(50_000, 3);
    let hub = FakeHub::start(vec![repo(
        "a/b",
        vec![
            FakeFile::new("m.gguf", big.clone()),
            FakeFile::new("n.gguf", big.clone()).quirk(Quirk::IgnoreRange),
        ],
    )]);
    let client = HubClient::new(&hub.endpoint, None);
    let data = tempfile::tempdir().unwrap();
    let dir = engine::hub::repo_dir(data.path(), "a/b");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("m.gguf.part"), &big[..12_345]).unwrap();
    std::fs::write(dir.join("n.gguf.part"), &big[..12_345]).unwrap();
    assert_eq!(std::fs::read(&pull(&client, "a/b/m.gguf", data.path()).unwrap()[0]).unwrap(), big);
    assert!(hub.log().iter().any(|l| l.contains("m.gguf range=12345-")), "{:?}", hub.log());
    // A server that ignores Range sends the whole file again; the part is rewritten, not appended to.
    assert_eq!(std::fs::read(&pull(&client, "a/b/n.gguf", data.path()).unwrap()[0]).unwrap(), big);
}

#[test]
fn checksum_mismatch_deletes_the_part_file() {
    let hub = FakeHub::start(vec![repo(
        "a/bad",
        vec![FakeFile::new("m.gguf", blob(4096, 9)).quirk(Quirk::WrongChecksum)],
    )]);
    let client = HubClient::new(&hub.endpoint, None);
    let data = tempfile::tempdir().unwrap();
    let err = pull(&client, "a/bad/m.gguf", data.path()).unwrap_err();
    assert!(matches!(&err, HubError::Checksum { .. }), "{err}");
    assert!(
        err.to_string().contains("checksum mismatch") && err.to_string().contains("deleted"),
        "{err}"
    );
    let dir = engine::hub::repo_dir(data.path(), "a/bad");
    assert!(!dir.join("m.gguf.part").exists() && !dir.join("m.gguf").exists());
}

#[test]
fn not_found_token_needed_and_network_down() {
    let gated = FakeRepo {
        name: "corp/gated".to_owned(),
        files: vec![FakeFile::new("m.gguf", blob(1000, 1))],
        token: Some("s3cret".to_owned()),
    };
    let hub = FakeHub::start(vec![gated, repo("a/b", vec![FakeFile::new("x.gguf", blob(10, 1))])]);
    let data = tempfile::tempdir().unwrap();
    let anon = HubClient::new(&hub.endpoint, None);
    let err = pull(&anon, "no/such-repo", data.path()).unwrap_err();
    assert!(
        matches!(err, HubError::NotFound { .. }) && err.to_string().contains("no such repo"),
        "{err}"
    );
    let err = pull(&anon, "a/b/missing.gguf", data.path()).unwrap_err();
    assert!(err.to_string().contains("no such repo/file"), "{err}");
    let err = pull(&anon, "corp/gated", data.path()).unwrap_err();
    assert!(matches!(err, HubError::Unauthorized { status: 401, .. }), "{err}");
    assert!(err.to_string().contains("hub.token"), "{err}");
    let wrong = HubClient::new(&hub.endpoint, Some("nope".to_owned()));
    assert!(matches!(pull(&wrong, "corp/gated", data.path()), Err(HubError::Unauthorized { .. })));
    let authed = HubClient::new(&hub.endpoint, Some("s3cret".to_owned()));
    pull(&authed, "corp/gated", data.path()).unwrap();
    assert!(hub.log().iter().filter(|l| l.contains("corp/gated")).any(|l| l.ends_with(" auth")));

    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = HubClient::new(&format!("http://127.0.0.1:{port}"), None);
    let err = pull(&down, "a/b", data.path()).unwrap_err();
    assert!(matches!(err, HubError::Network { .. }), "{err}");
    assert!(err.to_string().contains("cannot reach the model hub"), "{err}");
}

#[test]
fn remote_paths_cannot_escape_the_model_folder() {
    let hub = FakeHub::start(vec![]);
    let client = HubClient::new(&hub.endpoint, None);
    let data = tempfile::tempdir().unwrap();
    let evil = RemoteFile { path: "../../escape.gguf".to_owned(), size: 1, sha256: None };
    let err = client.download("a/b", "main", &evil, data.path(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("unsafe file path"), "{err}");
}
