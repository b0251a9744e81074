//! Investor suitability under Chinese rules: a risk questionnaire scores a customer C1–C5, products
//! carry R1–R5, and the check says whether a sale is suitable and writes the risk disclosure.
//!
//! Rules followed (《证券期货投资者适当性管理办法》, CSRC Order 130, and the SAC 《证券经营机构投资者
//! 适当性管理实施指引（试行）》, which define the five investor and five product levels):
//! - a C*n* investor matches products up to R*n*;
//! - a mismatched product must not be actively recommended to an ordinary investor; if the investor
//!   insists, the firm may sell only after a special written risk warning (特别书面风险警示);
//! - the lowest category (风险承受能力最低类别: cannot bear any loss) may never be sold a product above
//!   its level, insisting or not;
//! - professional investors (专业投资者) are not subject to the ordinary-investor matching.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{FinanceError, Result, parse_params};

/// One question of a risk questionnaire.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Question {
    /// Stable id, e.g. `q1`.
    pub id: String,
    /// The question text.
    pub text: String,
    /// The options: key (A, B, …), text and score.
    pub options: Vec<AnswerOption>,
    /// Option keys that put the investor in the lowest category regardless of score.
    #[serde(default)]
    pub lowest_category_if: Vec<String>,
}

/// One answer option.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct AnswerOption {
    /// A, B, C, …
    pub key: String,
    /// The option text.
    pub text: String,
    /// Points for choosing it.
    pub score: u32,
}

fn question(id: &str, text: &str, options: &[(&str, u32)], lowest: &[&str]) -> Question {
    Question {
        id: id.to_owned(),
        text: text.to_owned(),
        options: options
            .iter()
            .enumerate()
            .map(|(i, (text, score))| AnswerOption {
                key: char::from(b'A' + u8::try_from(i).unwrap_or(25)).to_string(),
                text: (*text).to_owned(),
                score: *score,
            })
            .collect(),
        lowest_category_if: lowest.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The built-in questionnaire (ten questions, 0–100 points), modelled on the industry template.
pub fn default_questionnaire() -> Vec<Question> {
    vec![
        question(
            "q1",
            "您的年龄是？",
            &[("18–30岁", 8), ("31–50岁", 10), ("51–60岁", 6), ("61–70岁", 3), ("70岁以上", 0)],
            &[],
        ),
        question(
            "q2",
            "您的家庭年收入是？",
            &[
                ("5万元以下", 2),
                ("5–20万元", 4),
                ("20–50万元", 6),
                ("50–100万元", 8),
                ("100万元以上", 10),
            ],
            &[],
        ),
        question(
            "q3",
            "您可用于投资的金融资产是？",
            &[
                ("10万元以下", 2),
                ("10–50万元", 4),
                ("50–300万元", 6),
                ("300–1000万元", 8),
                ("1000万元以上", 10),
            ],
            &[],
        ),
        question(
            "q4",
            "您的投资经验年限是？",
            &[("没有经验", 0), ("2年以下", 3), ("2–5年", 6), ("5–10年", 8), ("10年以上", 10)],
            &[],
        ),
        question(
            "q5",
            "您投资过的最高风险品种是？",
            &[
                ("仅存款、国债", 0),
                ("债券、银行理财", 3),
                ("基金、股票", 6),
                ("期货、期权等衍生品", 10),
            ],
            &[],
        ),
        question(
            "q6",
            "您计划的投资期限是？",
            &[("1年以内", 2), ("1–3年", 5), ("3–5年", 8), ("5年以上", 10)],
            &[],
        ),
        question(
            "q7",
            "您的投资目标是？",
            &[
                ("保本，不能亏损", 0),
                ("稳定收益", 4),
                ("资产增值，可承受一定波动", 7),
                ("追求高收益，能承受较大波动", 10),
            ],
            &[],
        ),
        question(
            "q8",
            "您能承受的最大本金亏损是？",
            &[
                ("不能承受任何亏损", 0),
                ("10%以内", 3),
                ("10%–30%", 6),
                ("30%–50%", 8),
                ("50%以上", 10),
            ],
            &["A"],
        ),
        question(
            "q9",
            "您的负债和家庭负担情况是？",
            &[("负担较重", 2), ("负担一般", 5), ("没有负担", 10)],
            &[],
        ),
        question(
            "q10",
            "如果投资一个月内下跌20%，您会？",
            &[("全部卖出", 0), ("卖出一部分", 4), ("继续持有", 7), ("追加投资", 10)],
            &[],
        ),
    ]
}

/// Investor levels C1–C5 with their usual names.
const LEVELS: [(&str, &str); 5] =
    [("C1", "保守型"), ("C2", "谨慎型"), ("C3", "稳健型"), ("C4", "积极型"), ("C5", "激进型")];
/// Product levels R1–R5.
const PRODUCTS: [(&str, &str); 5] =
    [("R1", "低风险"), ("R2", "中低风险"), ("R3", "中风险"), ("R4", "中高风险"), ("R5", "高风险")];
/// Upper score bounds of C1–C4 for the 0–100 built-in questionnaire; above the last is C5.
const DEFAULT_CUTS: [u32; 4] = [20, 40, 60, 80];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuitabilityParams {
    #[serde(default)]
    answers: Option<Value>,
    #[serde(default)]
    investor_level: Option<String>,
    #[serde(default)]
    product_risk: Option<String>,
    #[serde(default)]
    product_name: Option<String>,
    #[serde(default)]
    professional: bool,
    #[serde(default)]
    insists: bool,
    #[serde(default)]
    questionnaire: Option<Vec<Question>>,
    #[serde(default)]
    cuts: Option<[u32; 4]>,
}

/// The JSON schema of the `suitability` tool.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answers": {"description": "option keys per question: an object {\"q1\": \"B\", …} or an array [\"B\", …]; \
                omit both answers and investor_level to get the questionnaire"},
            "investor_level": {"type": "string", "description": "a known level C1–C5 instead of answers"},
            "product_risk": {"type": "string", "description": "the product's risk level R1–R5"},
            "product_name": {"type": "string"},
            "professional": {"type": "boolean", "description": "a professional investor (专业投资者)"},
            "insists": {"type": "boolean", "description": "the investor insists on buying after being told it is unsuitable"},
            "questionnaire": {"type": "array", "description": "a custom questionnaire replacing the built-in one", "items": {"type": "object"}},
            "cuts": {"type": "array", "items": {"type": "integer"}, "description": "upper scores of C1–C4, default [20, 40, 60, 80]"}
        }
    })
}

fn level_number(text: &str, prefix: char, field: &str) -> Result<usize> {
    let t = text.trim().to_uppercase();
    let digits = t.trim_start_matches("PR").trim_start_matches(prefix);
    match digits.parse::<usize>() {
        Ok(n @ 1..=5) => Ok(n),
        _ => Err(FinanceError::invalid(
            field,
            format!("{text:?} is not a level {prefix}1–{prefix}5"),
        )),
    }
}

/// Runs the `suitability` tool.
pub fn run(params: Value) -> Result<Value> {
    let p: SuitabilityParams = parse_params(params)?;
    let questions = p.questionnaire.clone().unwrap_or_else(default_questionnaire);
    let cuts = p.cuts.unwrap_or(DEFAULT_CUTS);
    if cuts.windows(2).any(|w| w[0] >= w[1]) {
        return Err(FinanceError::invalid("cuts", "must be strictly increasing"));
    }
    let (level, score, lowest, chosen) = match (&p.answers, &p.investor_level) {
        (Some(answers), _) => {
            let (score, lowest, chosen) = score_answers(&questions, answers)?;
            let level = cuts.iter().position(|cut| score <= *cut).unwrap_or(4) + 1;
            (level, Some(score), lowest, chosen)
        }
        (None, Some(level)) => {
            (level_number(level, 'C', "investor_level")?, None, false, Vec::new())
        }
        (None, None) => {
            return Ok(json!({"questionnaire": questions, "cuts": cuts,
                "instructions": "Ask every question, then call again with `answers` and `product_risk`."}));
        }
    };
    // The lowest category always sits at C1.
    let level = if lowest { 1 } else { level };
    let (code, name) = LEVELS[level - 1];
    let allowed: Vec<&str> = PRODUCTS[..level].iter().map(|(r, _)| *r).collect();
    let mut out = json!({
        "score": score, "investor_level": code, "investor_type": name, "lowest_category": lowest,
        "professional": p.professional, "allowed_products": allowed, "answers": chosen,
    });
    if let Some(product) = &p.product_risk {
        let risk = level_number(product, 'R', "product_risk")?;
        let (r_code, r_name) = PRODUCTS[risk - 1];
        let matched = risk <= level || p.professional;
        let may_sell = matched || (p.insists && !lowest);
        let product_name = p.product_name.clone().unwrap_or_else(|| "本产品".to_owned());
        let mut text = format!(
            "风险揭示：{product_name}风险等级为{r_code}（{r_name}），您的风险承受能力等级为{code}（{name}）。"
        );
        if p.professional {
            text.push_str("您为专业投资者，不适用普通投资者的适当性匹配，但仍应充分了解产品风险。");
        } else if matched {
            text.push_str("产品风险等级与您的风险承受能力相匹配。");
        } else if lowest {
            text.push_str(&format!(
                "您属于风险承受能力最低类别的投资者，依据《证券期货投资者适当性管理办法》，不得向您销售风险等级高于{}的产品，即使您主动要求购买。",
                PRODUCTS[0].0
            ));
        } else {
            text.push_str(&format!(
                "{product_name}风险等级高于您的风险承受能力，不适合您购买，我们不会向您主动推介。若您坚持购买，须在阅读并签署特别书面风险警示后方可办理。"
            ));
        }
        text.push_str(
            "投资有风险，过往业绩不代表未来表现；本产品不保本、不保证收益，您可能损失部分或全部本金。请仔细阅读产品合同与风险揭示书，在充分了解产品风险后审慎决策。",
        );
        out["product_risk"] = json!(r_code);
        out["suitable"] = json!(matched);
        out["may_sell"] = json!(may_sell);
        out["requires_special_warning"] = json!(!matched && may_sell);
        out["disclosure"] = json!(text);
    }
    Ok(out)
}

fn score_answers(questions: &[Question], answers: &Value) -> Result<(u32, bool, Vec<Value>)> {
    let by_id: BTreeMap<String, String> = match answers {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                v.as_str().map(|s| (k.clone(), s.trim().to_uppercase())).ok_or_else(|| {
                    FinanceError::invalid(
                        format!("answers.{k}"),
                        "expected an option key such as \"B\"",
                    )
                })
            })
            .collect::<Result<_>>()?,
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = questions.get(i).map(|q| q.id.clone()).ok_or_else(|| {
                    FinanceError::invalid(
                        format!("answers[{i}]"),
                        format!("the questionnaire has only {} questions", questions.len()),
                    )
                })?;
                v.as_str().map(|s| (id, s.trim().to_uppercase())).ok_or_else(|| {
                    FinanceError::invalid(
                        format!("answers[{i}]"),
                        "expected an option key such as \"B\"",
                    )
                })
            })
            .collect::<Result<_>>()?,
        _ => return Err(FinanceError::invalid("answers", "expected an object or an array")),
    };
    if let Some(extra) = by_id.keys().find(|k| !questions.iter().any(|q| &q.id == *k)) {
        return Err(FinanceError::invalid(format!("answers.{extra}"), "no such question"));
    }
    let mut score = 0;
    let mut lowest = false;
    let mut chosen = Vec::new();
    for q in questions {
        let key = by_id.get(&q.id).ok_or_else(|| {
            FinanceError::invalid(format!("answers.{}", q.id), format!("unanswered: {}", q.text))
        })?;
        let option = q.options.iter().find(|o| &o.key == key).ok_or_else(|| {
            let keys: Vec<&str> = q.options.iter().map(|o| o.key.as_str()).collect();
            FinanceError::invalid(
                format!("answers.{}", q.id),
                format!("{key:?} is not one of {}", keys.join(", ")),
            )
        })?;
        score += option.score;
        lowest |= q.lowest_category_if.contains(key);
        chosen.push(json!({"id": q.id, "answer": key, "text": option.text, "score": option.score}));
    }
    Ok((score, lowest, chosen))
}
