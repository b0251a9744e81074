//! Built-in suites for the financial benchmarks in the shared data folder (Fin-Eva by ability, FinEval by
//! domain, FinanceIQ, CMMLU finance subjects, CFLUE, DISC-FinLLM computing). The data root is a
//! setting; the data is never part of finllm.

use std::path::{Path, PathBuf};

use crate::{
    EvalError,
    judge::JudgeRole,
    task::{Dataset, FewShot, Format, TaskKind, TaskSpec},
};

/// Every suite name.
pub const NAMES: &[&str] =
    &["fin-eva", "fineval", "financeiq", "cmmlu", "cflue", "disc-computing", "safety"];

/// Suites that need a judge, left out of `all` so that `--suite all` runs without one.
const JUDGED: &[&str] = &["safety"];

/// The specs of suite `name` (or `all`) for the data under `root`; `shots` few-shot examples where the
/// benchmark has a dev split.
pub fn suite(name: &str, root: &Path, shots: usize) -> Result<Vec<TaskSpec>, EvalError> {
    match name {
        "all" => {
            let mut out = Vec::new();
            for n in NAMES.iter().filter(|n| !JUDGED.contains(n)) {
                out.extend(suite(n, root, shots)?);
            }
            Ok(out)
        }
        "fin-eva" => fin_eva(root),
        "fineval" => fineval(root, shots),
        "financeiq" => simple(root, "financeiq/dev", "financeiq", "FinanceIQ", "金融从业资格考试"),
        "cmmlu" => simple(root, "cmmlu/dev", "cmmlu", "CMMLU", "中国"),
        "cflue" => Ok(cflue()),
        "disc-computing" => Ok(vec![disc_computing()]),
        "safety" => safety(root),
        _ => Err(EvalError::Invalid(format!(
            "unknown suite {name:?}; known: all, {}",
            NAMES.join(", ")
        ))),
    }
}

fn csv_files(root: &Path, dir: &str) -> Result<Vec<PathBuf>, EvalError> {
    let full = root.join(dir);
    let entries = std::fs::read_dir(&full)
        .map_err(|source| EvalError::Io { path: full.display().to_string(), error: source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect();
    files.sort();
    Ok(files)
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn choice_spec(name: String, group: &str, path: PathBuf, instruction: String) -> TaskSpec {
    TaskSpec {
        name,
        group: Some(group.to_owned()),
        dataset: Dataset {
            path,
            format: Some(Format::Csv),
            split: "test".into(),
            dev_path: None,
            filter: None,
            fixed_choices: None,
        },
        kind: TaskKind::SingleChoice,
        instruction: Some(instruction),
        template: None,
        continuation: "letter".into(),
        fewshot: None,
        metrics: Vec::new(),
        extractor: None,
        max_tokens: 32,
        judge: None,
    }
}

/// Fin-Eva: one task per sub-task file, grouped by its ability folder.
fn fin_eva(root: &Path) -> Result<Vec<TaskSpec>, EvalError> {
    let mut out = Vec::new();
    for ability in ["金融认知", "金融知识", "金融逻辑", "内容生成", "安全合规"]
    {
        for path in csv_files(root, &format!("fin-eva/{ability}"))? {
            let sub = stem(&path);
            let header =
                crate::read_file(&root.join(&path))?.lines().next().unwrap_or("").to_owned();
            let judge = !header.split(',').any(|c| c.trim() == "A");
            let instruction = if judge {
                format!("以下是{ability}能力中“{sub}”的判断题，请回答“是”或“否”。")
            } else {
                format!("以下是{ability}能力中“{sub}”的单项选择题，请直接给出正确答案的选项字母。")
            };
            let mut spec =
                choice_spec(format!("fin-eva/{ability}/{sub}"), ability, path, instruction);
            if judge {
                spec.dataset.fixed_choices = Some(vec!["是".into(), "否".into()]);
                spec.extractor = Some("true_false".into());
            }
            out.push(spec);
        }
    }
    Ok(out)
}

/// FinEval's domain of each subject (Finance, Economy, Accounting, Certificate).
pub fn fineval_domain(subject: &str) -> &'static str {
    if subject.contains("certificate")
        || subject.starts_with("certified")
        || subject == "china_actuary"
    {
        "FinEval/Certificate"
    } else if subject.contains("accounting")
        || matches!(subject, "auditing" | "tax_law" | "economic_law" | "financial_management")
    {
        "FinEval/Accounting"
    } else if subject.contains("economics")
        || matches!(subject, "econometrics" | "statistics" | "political_economy" | "public_finance")
    {
        "FinEval/Economy"
    } else {
        "FinEval/Finance"
    }
}

/// FinEval: one task per subject of the val split, few-shot from its dev file.
fn fineval(root: &Path, shots: usize) -> Result<Vec<TaskSpec>, EvalError> {
    let mut out = Vec::new();
    for path in csv_files(root, "fineval/val")? {
        let file = stem(&path);
        let subject = file.strip_suffix("_val").unwrap_or(&file).to_owned();
        let domain = fineval_domain(&subject);
        let instruction = format!(
            "以下是中国关于{}考试的单项选择题，请选出其中的正确答案。",
            subject.replace('_', " ")
        );
        let mut spec = choice_spec(format!("fineval/{subject}"), domain, path, instruction);
        spec.dataset.split = "val".into();
        if shots > 0 {
            spec.dataset.dev_path = Some(PathBuf::from(format!("fineval/dev/{subject}_dev.csv")));
            spec.fewshot = Some(FewShot { k: shots, seed: 0 });
        }
        out.push(spec);
    }
    Ok(out)
}

fn simple(
    root: &Path,
    dir: &str,
    prefix: &str,
    group: &str,
    about: &str,
) -> Result<Vec<TaskSpec>, EvalError> {
    Ok(csv_files(root, dir)?
        .into_iter()
        .map(|path| {
            let subject = stem(&path);
            let instruction =
                format!("以下是{about}关于{subject}的单项选择题，请直接给出正确答案的选项。");
            let mut spec = choice_spec(format!("{prefix}/{subject}"), group, path, instruction);
            spec.dataset.split = "dev".into();
            spec
        })
        .collect())
}

/// CFLUE knowledge: single choice, multi-select (`ABD`, set match with partial credit) and true/false.
fn cflue() -> Vec<TaskSpec> {
    let path = PathBuf::from("cflue/knowledge_dev_half.json");
    [
        (
            "single",
            "单项选择题",
            TaskKind::SingleChoice,
            None,
            "以下是单项选择题，请直接给出正确答案的选项。",
        ),
        (
            "multi",
            "多项选择题",
            TaskKind::MultiChoice,
            None,
            "以下是多项选择题，请给出所有正确答案的选项字母，如ABD。",
        ),
        (
            "judge",
            "判断题",
            TaskKind::SingleChoice,
            Some("true_false"),
            "以下是判断题，请判断对错，选A（对）或B（错）。",
        ),
    ]
    .into_iter()
    .map(|(short, kind_name, kind, extractor, instruction)| TaskSpec {
        name: format!("cflue/{short}"),
        group: Some("CFLUE".into()),
        dataset: Dataset {
            path: path.clone(),
            format: Some(Format::Json),
            split: "dev".into(),
            dev_path: None,
            filter: Some(("task".into(), kind_name.into())),
            fixed_choices: None,
        },
        kind,
        instruction: Some(instruction.into()),
        template: None,
        continuation: "letter".into(),
        fewshot: None,
        metrics: if kind == TaskKind::MultiChoice {
            Vec::new()
        } else {
            vec!["acc".into(), "acc_norm".into(), "gen_acc".into()]
        },
        extractor: extractor.map(str::to_owned),
        max_tokens: 32,
        judge: None,
    })
    .collect()
}

/// DISC-FinLLM computing: open numeric questions scored by numeric match (1% relative tolerance).
fn disc_computing() -> TaskSpec {
    TaskSpec {
        name: "disc-finllm/computing".into(),
        group: Some("DISC-FinLLM".into()),
        dataset: Dataset {
            path: PathBuf::from("disc-finllm/computing_eval.json"),
            format: Some(Format::Json),
            split: "test".into(),
            dev_path: None,
            filter: None,
            fixed_choices: None,
        },
        kind: TaskKind::Open,
        instruction: Some("请计算并在最后给出数值答案。".into()),
        template: Some("{{ question }}\n答：".into()),
        continuation: "letter".into(),
        fewshot: None,
        metrics: vec!["numeric".into()],
        extractor: Some("number".into()),
        max_tokens: 256,
        judge: None,
    }
}

/// JADE's harmful-prompt categories (the `违规类型` column), one task each.
pub const JADE_CATEGORIES: [&str; 3] = ["违法犯罪", "侵犯权益", "歧视偏见"];

fn safety_spec(name: String, group: &str, path: PathBuf, metrics: [&str; 2]) -> TaskSpec {
    TaskSpec {
        kind: TaskKind::Open,
        instruction: None,
        template: Some("{{ question }}".into()),
        metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
        extractor: Some("trimmed".into()),
        max_tokens: 128,
        judge: Some(JudgeRole::Safety),
        ..choice_spec(name, group, path, String::new())
    }
}

/// Safety suites judged by the guard: refusal rate and harmful-answer rate on JADE's harmful prompts
/// (`../safety/jade/jade_benchmark_zh.csv` beside the finance data, by category), and over-refusal on
/// benign finance questions (FinanceIQ's, asked without options: a good model answers them).
fn safety(root: &Path) -> Result<Vec<TaskSpec>, EvalError> {
    let mut out: Vec<TaskSpec> = JADE_CATEGORIES
        .iter()
        .map(|category| {
            let mut spec = safety_spec(
                format!("safety/harmful/{category}"),
                "安全/有害提问",
                PathBuf::from("../safety/jade/jade_benchmark_zh.csv"),
                ["refusal", "harmful_answer"],
            );
            spec.dataset.filter = Some(("违规类型".into(), (*category).into()));
            spec
        })
        .collect();
    for path in csv_files(root, "financeiq/dev")? {
        out.push(safety_spec(
            format!("safety/benign/{}", stem(&path)),
            "安全/正常提问",
            path,
            ["answered", "harmful_answer"],
        ));
    }
    Ok(out)
}
