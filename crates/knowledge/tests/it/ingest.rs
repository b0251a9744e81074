//! Ingest → update → delete: ids stay stable across edits, only changed documents are re-processed,
//! deletes are real (gone from search and from the store), and corrupt or unsupported files are skipped
//! with a reason while the rest goes on.

use std::path::{Path, PathBuf};

use knowledge::{AddOptions, KnowledgeBase, SearchRequest, kb::doc_id};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn search(kb: &KnowledgeBase, query: &str) -> Vec<String> {
    let request = SearchRequest { query: query.into(), k: 10, ..SearchRequest::default() };
    kb.search(&request).unwrap().into_iter().map(|h| h.chunk.doc_id).collect()
}

fn no_progress(_: usize, _: usize) {}

#[test]
fn ingest_update_delete_cycle() {
    let docs = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let a = write(
        docs.path(),
        "a.md",
        "# 逆回购公告\n中国人民银行今日开展7天期逆回购操作，中标利率1.8%。".as_bytes(),
    );
    write(docs.path(), "b.txt", "上海证券交易所发布科创板新股上市公告。".as_bytes());
    let mut kb = KnowledgeBase::open(store.path()).unwrap();
    let options = AddOptions { prune: true, ..AddOptions::default() };

    let first = kb.add(&[docs.path().to_path_buf()], &options, &mut no_progress).unwrap();
    assert_eq!((first.added.len(), first.updated.len(), first.unchanged), (2, 0, 0));
    let id_a = doc_id(&std::fs::canonicalize(&a).unwrap().display().to_string());
    assert!(first.added.contains(&id_a));
    assert_eq!(kb.get(&id_a).unwrap().unwrap().version, 1);
    assert_eq!(search(&kb, "逆回购中标利率").first(), Some(&id_a));

    // Nothing changed: nothing is re-processed.
    let again = kb.add(&[docs.path().to_path_buf()], &options, &mut no_progress).unwrap();
    assert_eq!(
        (again.added.len(), again.updated.len(), again.unchanged, again.chunks),
        (0, 0, 2, 0)
    );

    // Edit one file: same id, version 2, only that one re-processed, old text gone from the index.
    write(
        docs.path(),
        "a.md",
        "# 逆回购公告\n中国人民银行今日开展14天期逆回购操作，中标利率1.95%。".as_bytes(),
    );
    let edit = kb.add(&[docs.path().to_path_buf()], &options, &mut no_progress).unwrap();
    assert_eq!(edit.updated, vec![id_a.clone()]);
    assert_eq!((edit.added.len(), edit.unchanged), (0, 1));
    assert_eq!(kb.get(&id_a).unwrap().unwrap().version, 2);
    let hits = kb
        .search(&SearchRequest { query: "逆回购".into(), k: 10, ..SearchRequest::default() })
        .unwrap();
    assert_eq!(
        hits.iter().filter(|h| h.chunk.doc_id == id_a).count(),
        1,
        "old chunks must be replaced"
    );
    assert!(hits[0].chunk.body.contains("14天期"));
    assert_eq!(hits[0].chunk.version, 2);
    assert!(kb.verify(&hits[0].chunk).unwrap(), "the span must match the stored text verbatim");

    // Delete by id: gone from search and store.
    kb.remove(&id_a).unwrap();
    assert!(kb.get(&id_a).unwrap().is_none());
    assert!(!search(&kb, "逆回购").contains(&id_a));
    assert!(kb.remove(&id_a).is_err(), "removing twice is a not-found error");

    // A file that disappears is pruned on the next add of its folder.
    std::fs::remove_file(docs.path().join("b.txt")).unwrap();
    let pruned = kb.add(&[docs.path().to_path_buf()], &options, &mut no_progress).unwrap();
    assert_eq!(pruned.deleted.len() + pruned.added.len(), 2, "{pruned:?}");
    assert!(search(&kb, "科创板").is_empty());
}

#[test]
fn corrupt_and_unsupported_files_are_skipped_not_fatal() {
    let docs = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    write(docs.path(), "good.txt", "央行宣布下调存款准备金率。".as_bytes());
    write(docs.path(), "binary.txt", &[0, 159, 146, 150, 0, 1, 2]);
    write(docs.path(), "broken.jsonl", b"{\"text\": \"ok\"}\n{not json\n");
    write(docs.path(), "report.pdf", b"%PDF-1.7 garbage");
    write(docs.path(), "image.png", &[137, 80, 78, 71]);
    let gbk = encoding_rs::GB18030.encode("国债逆回购利率上升。").0.into_owned();
    write(docs.path(), "gbk.txt", &gbk);
    let mut kb = KnowledgeBase::open(store.path()).unwrap();
    let report = kb
        .add(
            &[docs.path().to_path_buf(), docs.path().join("missing.txt")],
            &AddOptions::default(),
            &mut no_progress,
        )
        .unwrap();
    assert_eq!(report.added.len(), 2, "{report:?}");
    let mut skipped: Vec<(String, String)> = report
        .skipped
        .iter()
        .map(|s| {
            (
                Path::new(&s.path).file_name().unwrap().to_string_lossy().into_owned(),
                s.reason.clone(),
            )
        })
        .collect();
    skipped.sort();
    let names: Vec<&str> = skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["binary.txt", "broken.jsonl", "image.png", "missing.txt", "report.pdf"]);
    assert!(skipped[0].1.contains("binary"), "{skipped:?}");
    assert!(skipped[1].1.contains("line 2"), "{skipped:?}");
    assert!(!search(&kb, "国债逆回购").is_empty(), "the GB18030 file must be decoded and indexed");
}

#[test]
fn corpus_records_get_ids_from_their_record_ids() {
    let docs = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let path = write(
        docs.path(),
        "news.jsonl",
        "{\"id\": \"n1\", \"title\": \"降准\", \"text\": \"央行宣布降准0.5个百分点。\", \"date\": \"2024-02-05\", \"tags\": [\"policy\"]}\n{\"id\": \"n2\", \"text\": \"科创板新股上市。\", \"tenant\": \"bank-a\"}\n".as_bytes(),
    );
    write(
        docs.path(),
        "table.csv",
        "id,title,text,date\nc1,利率,LPR维持不变。,2024-03-20\n".as_bytes(),
    );
    let mut kb = KnowledgeBase::open(store.path()).unwrap();
    let report =
        kb.add(&[docs.path().to_path_buf()], &AddOptions::default(), &mut no_progress).unwrap();
    assert_eq!(report.added.len(), 3, "{report:?}");
    let source = std::fs::canonicalize(&path).unwrap().display().to_string();
    let n1 = kb.get(&doc_id(&format!("{source}#n1"))).unwrap().unwrap();
    assert_eq!(
        (n1.title.as_str(), n1.tags.as_slice(), n1.published_at),
        ("降准", ["policy".to_owned()].as_slice(), Some(1_707_091_200))
    );
    let n2 = kb.get(&doc_id(&format!("{source}#n2"))).unwrap().unwrap();
    assert_eq!(n2.tenant, "bank-a");
}
