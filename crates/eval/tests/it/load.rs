//! Loaders: every format yields the right samples, and malformed data names file, row and column.

use std::path::Path;

use eval::{EvalError, load::load, load::parse_dict};

fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

#[test]
fn csv_with_context_and_five_options() {
    let rows = load(&fixture("finance-eval/fin-eva/金融逻辑/金融事件解读.csv"), None).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].context.as_deref(), Some("某公司公告拟以不少于3亿元增持股份。"));
    assert!(rows[1].context.as_deref().unwrap().contains("\"将整改\""));
    let rows = load(&fixture("finance-eval/fin-eva/金融知识/基金从业资格考试.csv"), None).unwrap();
    assert_eq!(rows[0].choices.len(), 5);
    assert_eq!((rows[0].choices[4].0.as_str(), rows[0].target.as_str()), ("E", "C"));
    // FinanceIQ/CMMLU: unnamed id column, capitalised headers.
    let rows = load(&fixture("finance-eval/financeiq/dev/税务师.csv"), None).unwrap();
    assert_eq!((rows[1].id.as_str(), rows[1].choices[2].1.as_str()), ("1", "13%"));
}

#[test]
fn json_multi_select_and_true_false() {
    let rows = load(&fixture("finance-eval/cflue/knowledge_dev_half.json"), None).unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].target, "ABD");
    assert_eq!(rows[0].choices[3], ("D".to_string(), "金融衍生品市场".to_string()));
    assert_eq!(rows[2].choices, vec![("A".into(), "对".into()), ("B".into(), "错".into())]);
    assert_eq!(rows[2].fields["task"], "判断题");
    let rows = load(&fixture("finance-eval/disc-finllm/computing_eval.json"), None).unwrap();
    assert!(rows[0].choices.is_empty());
    assert_eq!(rows[1].target, "10000*3%*2=600");
}

#[test]
fn jsonl_chat_messages() {
    let rows = load(&fixture("formats/chat.jsonl"), None).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].fields["system"], "你是金融助手。");
    assert_eq!(
        (rows[0].question.as_str(), rows[0].target.as_str()),
        ("1万元存一年，利率2%，利息多少元？", "200元")
    );
    assert_eq!((rows[1].choices[1].1.as_str(), rows[1].target.as_str()), ("国库券", "B"));
}

#[test]
fn python_dicts() {
    assert_eq!(parse_dict("{'A': \"它's\", 'B': '乙'}"), None);
    let got = parse_dict("{'A': '甲, 乙', 'B': '丙'}").unwrap();
    assert_eq!(got, vec![("A".into(), "甲, 乙".into()), ("B".into(), "丙".into())]);
    let got = parse_dict(r#"{"A": "甲", "B": "乙"}"#).unwrap();
    assert_eq!(got.len(), 2);
}

fn error_of(name: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let err = load(&path, None).unwrap_err();
    assert!(matches!(err, EvalError::Data { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn malformed_data_names_file_row_and_column() {
    let e = error_of("a.csv", "id,question,A,B,answer\n0,q,x,y,A\n1,q,x,y,C\n");
    assert!(e.contains("a.csv: row 3, column answer") && e.contains("\"C\""), "{e}");
    let e = error_of("b.csv", "id,question,A,B,answer\n0,q,x,y\n");
    assert!(e.contains("b.csv: row 2"), "{e}");
    let e = error_of("c.csv", "id,text,answer\n0,q,A\n");
    assert!(e.contains("column question"), "{e}");
    let e = error_of(
        "d.json",
        "[{\"question\": \"q\", \"choices\": \"{'A': '甲'}\", \"answer\": \"A\"}, {\"question\": \"q\"}]",
    );
    assert!(e.contains("d.json: row 2, column answer"), "{e}");
    let e = error_of("e.jsonl", "{\"question\": \"q\", \"answer\": \"x\"}\n{oops\n");
    assert!(e.contains("e.jsonl: row 2"), "{e}");
    let e = error_of(
        "f.jsonl",
        "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}], \"answer\": \"y\"}\n",
    );
    assert!(e.contains("column messages[0].role"), "{e}");
}
