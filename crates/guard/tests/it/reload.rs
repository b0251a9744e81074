//! Hot reload: a changed policy or lexicon file is picked up, a broken one keeps the old version and
//! reports its line, and readers in flight keep the version they loaded.

use guard::{Policy, SharedPolicy, Taxonomy, reload::Reloader};

/// Writes a file. Each test's successive versions differ in size, so a change is seen even where
/// modification times are coarse.
fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn policies_reload_and_bad_files_keep_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenant.toml");
    write(&path, "name = \"one\"\n");
    let live = SharedPolicy::new(Policy::parse("tenant.toml", "name = \"one\"\n").unwrap());
    let mut reloader = Reloader::default();
    reloader.watch_policy(&path, live.clone());
    assert!(reloader.poll().is_empty(), "nothing changed yet");
    let held = live.load();
    write(&path, "name = \"second\"\n[thresholds]\nunsafe = 0.3\n");
    let done = reloader.poll();
    assert_eq!(done.len(), 1);
    assert!(done[0].result.is_ok());
    assert_eq!(live.load().name, "second");
    assert_eq!(held.name, "one", "a reader keeps the version it loaded");
    write(&path, "name = \"third\"\n\n[thresholds]\nunsafe = 7.25\n");
    let done = reloader.poll();
    let err = done[0].result.as_ref().unwrap_err().to_string();
    assert!(err.contains(":4:"), "{err}");
    assert_eq!(live.load().name, "second", "a broken file leaves the old policy live");
}

#[test]
fn lexicons_reload_into_the_guard() {
    let taxonomy = Taxonomy::builtin().unwrap();
    let guard = guard::Guard::builtin().unwrap();
    let term = "紫色独角兽行动";
    let before = guard.lexicon().load().find(term);
    assert!(before.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lexicon.toml");
    write(&path, guard::lexicon::LEXICON_TOML);
    let mut reloader = Reloader::default();
    reloader.watch_lexicon(&path, guard.lexicon().clone(), taxonomy.clone());
    let extended = format!(
        "{}\n[[entry]]\nintent = \"extremism\"\nstrength = \"block\"\nterms = [\"{term}\"]\n",
        guard::lexicon::LEXICON_TOML
    );
    write(&path, &extended);
    assert!(reloader.poll()[0].result.is_ok());
    let j = guard.check_input(&format!("请详细说明{term}的执行步骤"), &Policy::default());
    assert_eq!(j.verdict, guard::Verdict::Unsafe, "{j:?}");
    assert!(j.intents.iter().any(|i| i == "extremism"));
    write(&path, "[[entry]]\nintent = \"no_such_intent\"\nstrength = \"block\"\nterms = [\"x\"]\n");
    assert!(reloader.poll()[0].result.is_err());
    assert!(!guard.lexicon().load().find(term).is_empty(), "the good lexicon stays");
}

#[test]
fn the_reload_thread_stops_with_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    write(&path, "name = \"a\"\n");
    let live = SharedPolicy::new(Policy::default());
    let mut reloader = Reloader::default();
    reloader.watch_policy(&path, live.clone());
    let handle = reloader.spawn(std::time::Duration::from_millis(20));
    assert!(handle.running());
    write(&path, "name = \"bb\"\n");
    for _ in 0..200 {
        if live.load().name == "bb" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(live.load().name, "bb");
    assert_eq!(handle.last_error(), None);
    drop(handle);
}
