//! The Arrow IPC loader against files pyarrow wrote (stream and file format, two record batches,
//! nulls, large strings, integers, floats, booleans): every row equals pyarrow's own reading.

use std::path::{Path, PathBuf};

use eval::{arrow::rows, load::load, task::Format};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/formats/arrow")
}

fn expected() -> Vec<serde_json::Map<String, serde_json::Value>> {
    std::fs::read_to_string(dir().join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn stream_and_file_formats_read_like_pyarrow() {
    for name in ["stream.arrow", "file.arrow"] {
        let got = rows(&std::fs::read(dir().join(name)).unwrap()).unwrap();
        assert_eq!(got, expected(), "{name}");
    }
}

#[test]
fn arrow_rows_become_samples() {
    let samples = load(&dir().join("stream.arrow"), None).unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[0].question, "判断情感倾向。\n公司净利润同比增长三成。");
    assert_eq!(samples[0].target, "正面");
    assert_eq!(samples[0].id, "1");
    // A null id falls back to the row number; a null input leaves the instruction alone.
    assert_eq!((samples[2].id.as_str(), samples[3].question.as_str()), ("3", "判断情感倾向。"));
    assert_eq!(load(&dir().join("file.arrow"), Some(Format::Arrow)).unwrap(), samples);
}

#[test]
fn broken_arrow_is_a_clear_error() {
    let bytes = std::fs::read(dir().join("stream.arrow")).unwrap();
    assert!(rows(&bytes[..bytes.len() / 2]).unwrap_err().contains("truncated"));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cut.arrow");
    std::fs::write(&path, &bytes[..40]).unwrap();
    let err = load(&path, None).unwrap_err().to_string();
    assert!(err.contains("cut.arrow") && err.contains("Arrow IPC"), "{err}");
}
