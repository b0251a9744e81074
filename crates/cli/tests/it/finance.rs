//! `finllm finance`: the tools through the binary, with the seed's open-market figures.

use serde_json::Value;

use crate::finllm;

const OPERATIONS: &str = "操作日期,正/逆回购,期限,交易量,中标利率\n\
    2023-10-30,逆回购,7天,6580,1.8\n2023-10-31,逆回购,7天,6120,1.8\n2023-11-01,逆回购,7天,3910,1.8\n\
    2023-11-02,逆回购,7天,1940,1.8\n2023-11-03,逆回购,7天,430,1.8\n2023-11-06,逆回购,7天,180,1.8\n";

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

#[test]
fn liquidity_reproduces_the_seed_week() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ops.csv"), OPERATIONS).unwrap();
    let run = finllm(
        dir.path(),
        &[
            "finance",
            "liquidity",
            "--file",
            "ops.csv",
            "--from",
            "2023-11-06",
            "--to",
            "2023-11-10",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = json_of(&run.stdout);
    assert_eq!(out["total"]["maturing"], "18980");
    assert_eq!(out["daily"][0]["net"], "-6400");
    let run = finllm(
        dir.path(),
        &[
            "finance",
            "liquidity",
            "--file",
            "ops.csv",
            "--from",
            "2023-11-06",
            "--to",
            "2023-11-06",
            "--text",
        ],
        &[],
    );
    assert!(run.stdout.contains("净回笼6400亿元"), "{}", run.stdout);
}

#[test]
fn loan_calc_and_generic_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(
        dir.path(),
        &[
            "finance",
            "loan",
            "--principal",
            "100000",
            "--rate",
            "0.12",
            "--months",
            "12",
            "--method",
            "equal-installment",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(json_of(&run.stdout)["first_payment"], "8884.88");
    let run = finllm(dir.path(), &["finance", "calc", "10000*(1+3.5%)^3", "--text"], &[]);
    assert_eq!((run.code, run.stdout.trim()), (0, "11087.17875"), "{}", run.stderr);
    let run = finllm(
        dir.path(),
        &["finance", "run", "calc", "--json", r#"{"expression": "1/3", "decimals": 4}"#],
        &[],
    );
    assert_eq!(json_of(&run.stdout)["result"], "0.3333");
    let run = finllm(dir.path(), &["finance", "ratios", "revenue=1000", "net_income=120"], &[]);
    assert_eq!(json_of(&run.stdout)["ratios"]["net_margin"]["value"], "0.12");
}

#[test]
fn tools_lists_openai_functions() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["finance", "tools"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tools = json_of(&run.stdout);
    let names: Vec<&str> =
        tools.as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"liquidity") && names.contains(&"allocate") && names.contains(&"calc"),
        "{names:?}"
    );
    assert!(tools[0]["function"]["parameters"]["properties"].is_object());
}

#[test]
fn allocate_suitability_rating_from_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prices.csv"), "date,A,B,C\n2023-01-02,10,20,5\n2023-01-03,10.2,19.8,5.05\n2023-01-04,10.1,20.3,5.1\n2023-01-05,10.4,20.1,5.08\n2023-01-06,10.3,20.6,5.2\n2023-01-09,10.5,20.4,5.18\n").unwrap();
    let run = finllm(
        dir.path(),
        &[
            "finance",
            "allocate",
            "--prices",
            "prices.csv",
            "--method",
            "min-volatility",
            "--bounds",
            "0.1,0.6",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let weights = json_of(&run.stdout)["weights"].clone();
    let sum: f64 = weights.as_object().unwrap().values().map(|w| w.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-9, "{weights}");
    let run = finllm(
        dir.path(),
        &["finance", "suitability", "--level", "C2", "--product", "R4", "--text"],
        &[],
    );
    assert!(run.stdout.contains("特别书面风险警示"), "{}{}", run.stdout, run.stderr);
    std::fs::write(
        dir.path().join("stats.csv"),
        "地区,机构数量,从业人员,贷款余额\n全国,5604,50624,7856.4\n",
    )
    .unwrap();
    let run = finllm(dir.path(), &["finance", "lender-stats", "--file", "stats.csv"], &[]);
    assert_eq!(json_of(&run.stdout)["loan_balance_billion"], "785.64");
}

#[test]
fn bad_input_fails_with_a_located_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ops.csv"),
        "date,instrument,tenor,amount\n2023-11-06,逆回购,-7天,180\n",
    )
    .unwrap();
    let run = finllm(dir.path(), &["finance", "liquidity", "--file", "ops.csv"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("row 1, column `tenor`"), "{}", run.stderr);
    let run = finllm(dir.path(), &["finance", "run", "nope"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("unknown tool \"nope\""), "{}", run.stderr);
    let run = finllm(dir.path(), &["finance", "calc", "1/0"], &[]);
    assert!(run.stderr.contains("division by zero"), "{}", run.stderr);
    let run = finllm(dir.path(), &["finance", "loan", "--principal", "1"], &[]);
    assert_eq!(run.code, 2, "missing flags are a usage error");
}

#[test]
fn rates_compare_dr007_with_the_policy_rate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rates.csv"),
        "日期,DR007,Shibor O/N\n2023-11-03,1.7564,1.623\n2023-11-06,1.7691,1.579\n",
    )
    .unwrap();
    let run = finllm(
        dir.path(),
        &[
            "finance",
            "rates",
            "--file",
            "rates.csv",
            "--policy-rate",
            "1.8",
            "--compare",
            "DR007",
            "--text",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("相对1.8%的政策利率偏离-4.36至-3.09个基点，围绕政策利率波动"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Shibor O/N：11月6日报1.579%，较前值下行4.4个基点。"),
        "{}",
        run.stdout
    );
}
