//! Multimodal tasks: TSV rows with image paths or inline base64, sent as image content parts to
//! backends that take images; a text-only backend gets them reported as unsupported, never scored zero.

use std::path::{Path, PathBuf};

use eval::{
    backend::Scripted,
    load::{image_data_url, load},
    run::{RunOptions, run_task},
    store::Store,
    task::{Scoring, Task, TaskSpec},
};

fn mm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/formats/mm")
}

fn block<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn tsv_rows_carry_image_paths_and_inline_images() {
    let samples = load(&mm().join("multimodal.tsv"), None).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0].images, vec![mm().join("figure/bar.png").display().to_string()]);
    let inline = samples[1].images[0].clone();
    assert!(inline.starts_with("data:image/png;base64,iVBOR"), "{inline}");
    assert!(samples[2].images.is_empty());
    assert_eq!(samples[1].choices.len(), 4);
    // The file, encoded by EVE, equals the inline copy Python's base64 wrote for the same bytes.
    assert_eq!(image_data_url(&samples[0].images[0]).unwrap(), inline);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "id\timage\tquestion\tA\tB\tanswer\n7\tnowhere.png\t问\t是\t否\tA\n")
        .unwrap();
    let err = load(&bad, None).unwrap_err().to_string();
    assert!(
        err.contains("bad.tsv: row 2, column image: image") && err.contains("nowhere.png"),
        "{err}"
    );
}

#[test]
fn image_samples_go_to_vision_backends_and_are_unsupported_elsewhere() {
    let spec = TaskSpec::from_toml(
        "name = \"mm\"\nkind = \"single_choice\"\nmetrics = [\"gen_acc\"]\n[dataset]\npath = \"multimodal.tsv\"\n",
        "mm.toml",
    )
    .unwrap();
    let task = Task::load(spec, &mm()).unwrap();
    let options =
        RunOptions { scoring: Scoring::Generate, limit: None, no_cache: false, concurrency: 1 };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("eval.sqlite")).unwrap();

    // Text-only: the two image rows are unsupported, the text row is scored (right: A).
    let text_only = Scripted::new("text", |_| Ok("答案：A".into()));
    let r = block(run_task(&task, &text_only, &store, options, &|_| {})).unwrap();
    assert_eq!((r.unsupported, r.samples.len()), (2, 1));
    assert_eq!(r.metrics["gen_acc"].mean, 1.0);
    assert!(
        eval::report::Report::new("text", "generate", vec![r])
            .to_markdown()
            .contains("unsupported by the backend: 2")
    );

    // Vision: every row is asked; the image rows see their image count, the text row none.
    let vision = Scripted::new("vision", |p| {
        Ok(if p.contains("[1 images]") && p.contains("宽度") {
            "答案：C"
        } else {
            "答案：A"
        }
        .into())
    })
    .with_images();
    let r = block(run_task(&task, &vision, &store, options, &|_| {})).unwrap();
    assert_eq!((r.unsupported, r.samples.len()), (0, 3));
    assert_eq!(r.metrics["gen_acc"].mean, 1.0);

    // The log-likelihood path cannot show images: unsupported too.
    let loglik = RunOptions { scoring: Scoring::Loglik, ..options };
    let r = block(run_task(&task, &vision, &store, loglik, &|_| {})).unwrap();
    assert_eq!((r.unsupported, r.samples.len()), (2, 1));
}
