//! Small-loan company ratings: a configurable scorecard (TOML or JSON) over regulatory indicators
//! producing a province's grades (A–D as in Henan, AAA…C as in Jiangxi), and industry statistics like
//! the PBOC's quarterly small-loan company report.
//!
//! Provinces define their own indicators, weights and grade scales, so none of that is code: the
//! scorecard is data. The built-in default follows the national rules on small-loan companies
//! (银保监办发〔2020〕86号: on-balance financing at most 4× and bond/ABS financing at most 1× net assets;
//! one borrower at most 10% of net assets) plus asset quality and reporting.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{FinanceError, Result, parse_params};
use crate::table::{ColumnSpec, Table};

/// A scorecard: indicators, grades and the special rules provinces apply.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scorecard {
    /// A name for reports.
    #[serde(default)]
    pub name: String,
    /// The scored indicators.
    #[serde(rename = "indicator")]
    pub indicators: Vec<Indicator>,
    /// Grades from best to worst with their minimum scores; the last grade catches everything.
    #[serde(rename = "grade")]
    pub grades: Vec<Grade>,
    /// Boolean columns that cap the grade (e.g. refusing supervision → the lowest grade).
    #[serde(default, rename = "veto")]
    pub vetoes: Vec<Veto>,
    /// A company whose previous grade was the top grade keeps it without scoring (Jiangxi's 续评AAA).
    #[serde(default)]
    pub renew_top_grade: bool,
    /// The lowest grade twice in a row means supervision as a problem company (按问题企业监管).
    #[serde(default)]
    pub problem_after_two_lowest: bool,
    /// Privileges granted to a grade above a registered-capital floor (Henan: A and ≥ 3亿 → province-wide).
    #[serde(default, rename = "privilege")]
    pub privileges: Vec<Privilege>,
}

/// One indicator and how it scores.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// Column name in the company table.
    pub name: String,
    /// Human label.
    #[serde(default)]
    pub label: String,
    /// Maximum points.
    pub weight: Decimal,
    /// Value earning zero points (linear scoring).
    #[serde(default)]
    pub worst: Option<Decimal>,
    /// Value earning full points (linear scoring); `best < worst` means lower is better.
    #[serde(default)]
    pub best: Option<Decimal>,
    /// Step scoring instead: `[threshold, share of weight]`, first match wins; thresholds are
    /// "at least" when `higher_is_better`, else "at most".
    #[serde(default)]
    pub bands: Vec<(Decimal, Decimal)>,
    /// Direction for bands.
    #[serde(default)]
    pub higher_is_better: bool,
}

/// A grade and its floor.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grade {
    /// The grade's name (A, AAA, …).
    pub name: String,
    /// The minimum score.
    pub min_score: Decimal,
}

/// A boolean column that caps the grade.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Veto {
    /// The column (true/1/是 means the veto applies).
    pub field: String,
    /// The best grade still possible.
    pub cap: String,
}

/// A privilege for a grade.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Privilege {
    /// The grade that earns it.
    pub grade: String,
    /// Minimum registered capital in yuan.
    #[serde(default)]
    pub min_registered_capital: Decimal,
    /// What it allows.
    pub note: String,
}

/// The built-in A–D scorecard (100 points).
pub const DEFAULT_SCORECARD: &str = r#"
name = "默认小贷公司监管评级（A–D）"
renew_top_grade = false
problem_after_two_lowest = true

[[indicator]]
name = "npl_ratio"
label = "不良贷款率"
weight = 25
best = 0.01
worst = 0.10

[[indicator]]
name = "leverage"
label = "融资杠杆（负债/净资产）"
weight = 20
bands = [[1, 1], [3, 0.75], [5, 0.4]]

[[indicator]]
name = "single_borrower_ratio"
label = "单户贷款余额/净资产"
weight = 15
bands = [[0.05, 1], [0.10, 0.6]]

[[indicator]]
name = "provision_coverage"
label = "拨备覆盖率"
weight = 15
higher_is_better = true
bands = [[1.5, 1], [1.0, 0.6], [0.5, 0.3]]

[[indicator]]
name = "reporting_timeliness"
label = "数据报送及时率"
weight = 10
best = 1
worst = 0.8

[[indicator]]
name = "violations"
label = "违规次数"
weight = 15
bands = [[0, 1], [1, 0.5], [2, 0.2]]

[[grade]]
name = "A"
min_score = 85

[[grade]]
name = "B"
min_score = 70

[[grade]]
name = "C"
min_score = 60

[[grade]]
name = "D"
min_score = 0

[[veto]]
field = "refuses_supervision"
cap = "D"

[[privilege]]
grade = "A"
min_registered_capital = 300000000
note = "经省地方金融监管局同意，可申请在全省范围内开展业务"
"#;

impl Scorecard {
    /// Parses a scorecard from TOML or JSON text, checking it.
    pub fn parse(text: &str) -> Result<Scorecard> {
        let card: Scorecard = if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
                .map_err(|err| FinanceError::invalid("scorecard", err.to_string()))?
        } else {
            toml::from_str(text)
                .map_err(|err| FinanceError::invalid("scorecard", err.to_string()))?
        };
        card.check()?;
        Ok(card)
    }

    fn check(&self) -> Result<()> {
        if self.indicators.is_empty() || self.grades.is_empty() {
            return Err(FinanceError::invalid(
                "scorecard",
                "needs at least one indicator and one grade",
            ));
        }
        for (i, ind) in self.indicators.iter().enumerate() {
            let linear = ind.best.is_some() && ind.worst.is_some();
            if !linear && ind.bands.is_empty() {
                return Err(FinanceError::invalid(
                    format!("scorecard.indicator[{i}] ({})", ind.name),
                    "needs best and worst, or bands",
                ));
            }
            if ind.best == ind.worst && linear {
                return Err(FinanceError::invalid(
                    format!("scorecard.indicator[{i}] ({})", ind.name),
                    "best equals worst",
                ));
            }
        }
        if self.grades.windows(2).any(|w| w[0].min_score <= w[1].min_score) {
            return Err(FinanceError::invalid(
                "scorecard.grade",
                "grades must be listed best first with falling min_score",
            ));
        }
        for veto in &self.vetoes {
            if !self.grades.iter().any(|g| g.name == veto.cap) {
                return Err(FinanceError::invalid(
                    "scorecard.veto",
                    format!("cap {:?} is not a grade", veto.cap),
                ));
            }
        }
        Ok(())
    }

    /// Points for one indicator value.
    pub fn points(indicator: &Indicator, value: Decimal) -> Decimal {
        let share = if let (Some(best), Some(worst)) = (indicator.best, indicator.worst) {
            ((value - worst) / (best - worst)).clamp(Decimal::ZERO, Decimal::ONE)
        } else {
            indicator
                .bands
                .iter()
                .find(|(threshold, _)| {
                    if indicator.higher_is_better {
                        value >= *threshold
                    } else {
                        value <= *threshold
                    }
                })
                .map_or(Decimal::ZERO, |(_, share)| *share)
        };
        (share * indicator.weight).round_dp(4)
    }

    fn grade_for(&self, score: Decimal) -> usize {
        self.grades.iter().position(|g| score >= g.min_score).unwrap_or(self.grades.len() - 1)
    }
}

const NAME: ColumnSpec = ColumnSpec {
    name: "name",
    aliases: &["name", "company", "公司名称", "机构名称", "名称"],
};
const PREVIOUS: ColumnSpec = ColumnSpec {
    name: "previous_grade",
    aliases: &["previous_grade", "上年评级", "上一年度评级"],
};
const STATUS: ColumnSpec =
    ColumnSpec { name: "status", aliases: &["status", "状态", "经营状态"] };
const CAPITAL: ColumnSpec =
    ColumnSpec { name: "registered_capital", aliases: &["registered_capital", "注册资本"] };

fn truthy(text: &str) -> bool {
    matches!(text.trim().to_lowercase().as_str(), "true" | "1" | "yes" | "y" | "是")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingParams {
    #[serde(default)]
    companies: Option<Value>,
    #[serde(default)]
    csv: Option<String>,
    #[serde(default)]
    scorecard: Option<String>,
}

/// The JSON schema of the `rating` tool.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "companies": {"type": "array", "items": {"type": "object"}, "description": "one row per company: name, the \
                scorecard's indicator columns, optional previous_grade, status (歇业 = closed), registered_capital (yuan), \
                and veto columns such as refuses_supervision"},
            "csv": {"type": "string", "description": "the same rows as CSV text"},
            "scorecard": {"type": "string", "description": "scorecard as TOML or JSON text; default: the built-in A–D card"}
        }
    })
}

/// Runs the `rating` tool.
pub fn run(params: Value) -> Result<Value> {
    let p: RatingParams = parse_params(params)?;
    let card = Scorecard::parse(p.scorecard.as_deref().unwrap_or(DEFAULT_SCORECARD))?;
    let table = Table::required(p.companies.as_ref(), p.csv.as_deref(), "companies", "csv")?;
    if table.is_empty() {
        return Err(FinanceError::invalid("companies", "no companies"));
    }
    let name = table.require(NAME)?;
    let (previous, status, capital) =
        (table.find(PREVIOUS), table.find(STATUS), table.find(CAPITAL));
    let top = card.grades[0].name.clone();
    let lowest = card.grades[card.grades.len() - 1].name.clone();
    let mut results = Vec::new();
    let mut distribution: BTreeMap<String, usize> =
        card.grades.iter().map(|g| (g.name.clone(), 0)).collect();
    let mut notes_count: BTreeMap<String, usize> = BTreeMap::new();
    for row in 0..table.len() {
        let company = table.cell(row, name).to_owned();
        let previous_grade =
            previous.map(|c| table.cell(row, c).to_owned()).filter(|g| !g.is_empty());
        let closed = status.is_some_and(|c| {
            table.cell(row, c).contains("歇业") || table.cell(row, c).eq_ignore_ascii_case("closed")
        });
        let mut notes = Vec::new();
        if closed {
            notes.push("已登记歇业".to_owned());
            *notes_count.entry("已登记歇业".into()).or_default() += 1;
            results.push(json!({"name": company, "grade": Value::Null, "score": Value::Null, "notes": notes}));
            continue;
        }
        if card.renew_top_grade && previous_grade.as_deref() == Some(top.as_str()) {
            let note = format!("续评{top}");
            *notes_count.entry(note.clone()).or_default() += 1;
            *distribution.entry(top.clone()).or_default() += 1;
            results.push(
                json!({"name": company, "grade": top, "score": Value::Null, "notes": [note]}),
            );
            continue;
        }
        let mut score = Decimal::ZERO;
        let mut breakdown = serde_json::Map::new();
        for ind in &card.indicators {
            let column = table
                .headers()
                .iter()
                .position(|h| {
                    h.trim() == ind.name || (!ind.label.is_empty() && h.trim() == ind.label)
                })
                .ok_or_else(|| FinanceError::MissingColumn {
                    column: ind.name.clone(),
                    accepted: if ind.label.is_empty() {
                        ind.name.clone()
                    } else {
                        format!("{}, {}", ind.name, ind.label)
                    },
                    found: table.headers().join(", "),
                })?;
            let value = table.decimal(row, column)?;
            let points = Scorecard::points(ind, value);
            score += points;
            breakdown.insert(ind.name.clone(), json!(points.normalize()));
        }
        let mut index = card.grade_for(score);
        for veto in &card.vetoes {
            let applies = table
                .headers()
                .iter()
                .position(|h| h.trim() == veto.field)
                .is_some_and(|c| truthy(table.cell(row, c)));
            if applies {
                let cap = card.grades.iter().position(|g| g.name == veto.cap).unwrap_or(index);
                if cap > index {
                    index = cap;
                }
                notes.push(format!("{}：评级不高于{}", veto.field, veto.cap));
            }
        }
        let grade = card.grades[index].name.clone();
        if card.problem_after_two_lowest
            && grade == lowest
            && previous_grade.as_deref() == Some(lowest.as_str())
        {
            notes.push("按问题企业监管".to_owned());
            *notes_count.entry("按问题企业监管".into()).or_default() += 1;
        }
        for privilege in card.privileges.iter().filter(|pr| pr.grade == grade) {
            let capital_ok = match capital {
                Some(c) => table.decimal(row, c)? >= privilege.min_registered_capital,
                None => privilege.min_registered_capital.is_zero(),
            };
            if capital_ok {
                notes.push(privilege.note.clone());
            }
        }
        *distribution.entry(grade.clone()).or_default() += 1;
        results.push(json!({"name": company, "grade": grade, "score": score.normalize(), "breakdown": breakdown, "notes": notes}));
    }
    let rated: usize = distribution.values().sum();
    let dist_text: Vec<String> =
        card.grades.iter().map(|g| format!("{}级{}家", g.name, distribution[&g.name])).collect();
    let mut summary =
        format!("共{}家小额贷款公司，参评{}家：{}", table.len(), rated, dist_text.join("、"));
    for (note, count) in &notes_count {
        summary.push_str(&format!("；{note}{count}家"));
    }
    summary.push('。');
    Ok(
        json!({"scorecard": card.name, "companies": results, "distribution": distribution, "notes": notes_count, "summary": summary}),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsParams {
    #[serde(default)]
    rows: Option<Value>,
    #[serde(default)]
    csv: Option<String>,
    #[serde(default)]
    previous: Option<Value>,
    #[serde(default)]
    previous_csv: Option<String>,
    #[serde(default)]
    as_of: Option<String>,
    #[serde(default)]
    previous_label: Option<String>,
}

const COUNT: ColumnSpec = ColumnSpec {
    name: "companies",
    aliases: &["companies", "机构数量", "机构数", "家数"],
};
const STAFF: ColumnSpec = ColumnSpec {
    name: "staff",
    aliases: &["staff", "employees", "从业人员", "从业人员数"],
};
const LOANS: ColumnSpec =
    ColumnSpec { name: "loan_balance", aliases: &["loan_balance", "贷款余额"] };

/// The JSON schema of the `lender_stats` tool.
pub fn stats_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": {"type": "object"}, "description": "one row per region or company: \
                companies (机构数量, default 1 per row), staff (从业人员), loan_balance (贷款余额, 亿元)"},
            "csv": {"type": "string"},
            "previous": {"type": "array", "items": {"type": "object"}, "description": "the same rows for the comparison date"},
            "previous_csv": {"type": "string"},
            "as_of": {"type": "string", "description": "e.g. 2023年9月末"},
            "previous_label": {"type": "string", "description": "e.g. 年初"}
        }
    })
}

fn totals(table: &Table) -> Result<(Decimal, Decimal, Decimal)> {
    let count = table.find(COUNT);
    let staff = table.require(STAFF)?;
    let loans = table.require(LOANS)?;
    let (mut c, mut s, mut l) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for row in 0..table.len() {
        c += match count {
            Some(col) => table.decimal(row, col)?,
            None => Decimal::ONE,
        };
        s += table.decimal(row, staff)?;
        l += table.decimal(row, loans)?;
    }
    Ok((c, s, l))
}

/// Runs the `lender_stats` tool: totals (亿元 and billions) and changes against a previous date.
pub fn run_stats(params: Value) -> Result<Value> {
    let p: StatsParams = parse_params(params)?;
    let table = Table::required(p.rows.as_ref(), p.csv.as_deref(), "rows", "csv")?;
    let (count, staff, loans) = totals(&table)?;
    let billions = loans / Decimal::TEN;
    let as_of = p.as_of.unwrap_or_default();
    let mut summary = format!(
        "截至{as_of}，共有小额贷款公司{}家，从业人员{}人，贷款余额{}亿元（{} billion yuan）",
        count.normalize(),
        staff.normalize(),
        loans.normalize(),
        billions.normalize()
    );
    let mut out = json!({"companies": count.normalize(), "staff": staff.normalize(), "loan_balance_yi": loans.normalize(),
        "loan_balance_billion": billions.normalize()});
    if let Some(previous) =
        Table::from_rows_or_csv(p.previous.as_ref(), p.previous_csv.as_deref(), "previous")?
    {
        let (pc, ps, pl) = totals(&previous)?;
        let (dc, ds, dl) = (count - pc, staff - ps, loans - pl);
        let label = p.previous_label.unwrap_or_else(|| "上期".to_owned());
        let word = |d: Decimal, unit: &str| {
            if d.is_sign_negative() {
                format!("减少{}{unit}", (-d).normalize())
            } else {
                format!("增加{}{unit}", d.normalize())
            }
        };
        summary.push_str(&format!(
            "；较{label}机构{}，从业人员{}，贷款余额{}",
            word(dc, "家"),
            word(ds, "人"),
            word(dl, "亿元")
        ));
        out["change"] = json!({"companies": dc.normalize(), "staff": ds.normalize(), "loan_balance_yi": dl.normalize(),
            "loan_balance_billion": (dl / Decimal::TEN).normalize()});
    }
    summary.push('。');
    out["summary"] = json!(summary);
    Ok(out)
}
