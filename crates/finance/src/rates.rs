//! Money-market rates (Shibor tenors, DR007, repo rates) as series: basis-point changes, spreads to
//! the policy rate, moving averages and a Chinese summary such as the seed's "DR007 … 均围绕1.8%的
//! 政策利率波动".
//!
//! Rates are quoted to four decimals in percent, so they stay `Decimal`: a change of 1.579 − 1.623 is
//! exactly −4.4 bp, never −4.399999.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use time::Date;

use crate::error::{FinanceError, Result, parse_params};
use crate::table::{ColumnSpec, Table, format_date, parse_date, parse_decimal};

/// One dated observation, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The fixing date.
    pub date: Date,
    /// The rate in percent.
    pub value: Decimal,
}

const DATE: ColumnSpec =
    ColumnSpec { name: "date", aliases: &["date", "日期", "报告日", "交易日期"] };
const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// Reads a wide table (a date column plus one column per series); columns of changes (`涨跌`) are
/// skipped and AKShare's `-定价` suffix is dropped from names.
pub fn series_from_table(table: &Table) -> Result<BTreeMap<String, Vec<Point>>> {
    let date = table.require(DATE)?;
    let mut out = BTreeMap::new();
    for (column, header) in table.headers().iter().enumerate() {
        if column == date || header.contains("涨跌") || header.to_lowercase().contains("change") {
            continue;
        }
        let name = header.trim_end_matches("-定价").trim().to_owned();
        let mut points = Vec::new();
        for row in 0..table.len() {
            if table.cell(row, column).is_empty() {
                continue;
            }
            points.push(Point { date: table.date(row, date)?, value: table.decimal(row, column)? });
        }
        out.insert(name, points);
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesParams {
    #[serde(default)]
    series: Option<BTreeMap<String, Vec<PointParam>>>,
    #[serde(default)]
    csv: Option<String>,
    #[serde(default)]
    policy_rate: Option<Value>,
    #[serde(default)]
    moving_average: Option<usize>,
    #[serde(default)]
    band_bp: Option<Decimal>,
    #[serde(default)]
    compare: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointParam {
    date: String,
    value: Decimal,
}

/// The JSON schema of the `rates` tool.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "series": {"type": "object", "description": "series name → [{date, value}] with values in percent (e.g. DR007 1.9361)",
                "additionalProperties": {"type": "array", "items": {"type": "object",
                    "properties": {"date": {"type": "string"}, "value": {"type": "number"}}, "required": ["date", "value"]}}},
            "csv": {"type": "string", "description": "wide CSV: 日期/date plus one column per series (AKShare Shibor exports work)"},
            "policy_rate": {"description": "the policy rate in percent (e.g. 1.8 for the 7-day reverse repo), or the name of a series holding it"},
            "moving_average": {"type": "integer", "description": "moving-average window in observations, default 5"},
            "band_bp": {"type": "number", "description": "a series within this many bp of the policy rate 'moves around it', default 20"},
            "compare": {"type": "array", "items": {"type": "string"}, "description": "series to compare with the policy rate \
                (default: all), e.g. [\"DR007\"] for the 7-day reverse-repo rate"}
        }
    })
}

fn bp(delta: Decimal) -> Decimal {
    (delta * HUNDRED).normalize()
}

fn signed(value: Decimal) -> String {
    if value.is_sign_positive() && !value.is_zero() {
        format!("+{value}")
    } else {
        value.to_string()
    }
}

/// Runs the `rates` tool.
pub fn run(params: Value) -> Result<Value> {
    let p: RatesParams = parse_params(params)?;
    let mut all = match (&p.series, &p.csv) {
        (Some(series), _) => {
            let mut out = BTreeMap::new();
            for (name, points) in series {
                let mut parsed = Vec::with_capacity(points.len());
                for (index, point) in points.iter().enumerate() {
                    let date = parse_date(&point.date).ok_or_else(|| {
                        FinanceError::invalid(
                            format!("series.{name}[{index}].date"),
                            format!("{:?} is not a date", point.date),
                        )
                    })?;
                    parsed.push(Point { date, value: point.value });
                }
                out.insert(name.clone(), parsed);
            }
            out
        }
        (None, Some(text)) => series_from_table(&Table::from_csv(text)?)?,
        (None, None) => return Err(FinanceError::invalid("series", "give `series` or `csv`")),
    };
    for points in all.values_mut() {
        points.sort_by_key(|p| p.date);
    }
    if let Some((name, _)) = all.iter().find(|(_, points)| points.is_empty()) {
        return Err(FinanceError::invalid(format!("series.{name}"), "has no observations"));
    }
    if all.is_empty() {
        return Err(FinanceError::invalid("series", "no series"));
    }
    let window = p.moving_average.unwrap_or(5).max(1);
    let band = p.band_bp.unwrap_or(Decimal::from(20));
    // The policy rate: a constant, or a series looked up by date (last value on or before the date).
    let policy: Option<Box<dyn Fn(Date) -> Option<Decimal>>> = match &p.policy_rate {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if parse_decimal(name).is_none() => {
            let series = all.get(name).cloned().ok_or_else(|| {
                FinanceError::invalid("policy_rate", format!("no series named {name:?}"))
            })?;
            Some(Box::new(move |date| {
                series.iter().rev().find(|p| p.date <= date).map(|p| p.value)
            }))
        }
        Some(value) => {
            let rate = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string())
                .parse::<Decimal>()
                .map_err(|_| {
                    FinanceError::invalid("policy_rate", format!("{value} is not a rate"))
                })?;
            Some(Box::new(move |_| Some(rate)))
        }
    };
    if let Some(unknown) = p.compare.iter().flatten().find(|name| !all.contains_key(*name)) {
        return Err(FinanceError::invalid("compare", format!("no series named {unknown:?}")));
    }
    let policy_name = match &p.policy_rate {
        Some(Value::String(name)) if parse_decimal(name).is_none() => Some(name.clone()),
        _ => None,
    };
    let mut out = serde_json::Map::new();
    let mut summary = Vec::new();
    for (name, points) in &all {
        if Some(name) == policy_name.as_ref() {
            continue;
        }
        let mut rows = Vec::with_capacity(points.len());
        let mut spreads = Vec::new();
        let compared = p.compare.as_ref().is_none_or(|names| names.contains(name));
        for (i, point) in points.iter().enumerate() {
            let change = (i > 0).then(|| bp(point.value - points[i - 1].value));
            let spread = policy
                .as_ref()
                .filter(|_| compared)
                .and_then(|f| f(point.date))
                .map(|rate| bp(point.value - rate));
            if let Some(s) = spread {
                spreads.push(s);
            }
            let ma = (i + 1 >= window).then(|| {
                let sum: Decimal = points[i + 1 - window..=i].iter().map(|p| p.value).sum();
                (sum / Decimal::from(window)).round_dp(6).normalize()
            });
            rows.push(json!({"date": format_date(point.date), "value": point.value.normalize(), "change_bp": change,
                "spread_bp": spread, "moving_average": ma}));
        }
        let (first, last) = (points[0], points[points.len() - 1]);
        let total = bp(last.value - first.value);
        let min = points.iter().map(|p| p.value).min().unwrap_or_default();
        let max = points.iter().map(|p| p.value).max().unwrap_or_default();
        let mean = (points.iter().map(|p| p.value).sum::<Decimal>() / Decimal::from(points.len()))
            .round_dp(6);
        let mut line = format!("{name}：{}报{}%", cn_date(last.date), last.value.normalize());
        if points.len() > 1 {
            let previous = points[points.len() - 2];
            let daily = bp(last.value - previous.value);
            line.push_str(&format!("，较前值{}", move_text(daily)));
            if points.len() > 2 {
                line.push_str(&format!(
                    "；较{}的{}%{}",
                    cn_date(first.date),
                    first.value.normalize(),
                    move_text(total)
                ));
            }
        }
        if let (Some(low), Some(high)) = (spreads.iter().min(), spreads.iter().max()) {
            let rate = policy.as_ref().and_then(|f| f(last.date)).unwrap_or_default();
            let around = low.abs() <= band && high.abs() <= band;
            line.push_str(&format!(
                "；相对{}%的政策利率偏离{}至{}个基点，{}",
                rate.normalize(),
                signed(*low),
                signed(*high),
                if around { "围绕政策利率波动" } else { "明显偏离政策利率" }
            ));
        }
        line.push('。');
        summary.push(line);
        out.insert(
            name.clone(),
            json!({"first": {"date": format_date(first.date), "value": first.value.normalize()},
                   "last": {"date": format_date(last.date), "value": last.value.normalize()},
                   "change_bp": total, "min": min.normalize(), "max": max.normalize(), "mean": mean.normalize(),
                   "spread_bp_min": spreads.iter().min(), "spread_bp_max": spreads.iter().max(),
                   "observations": rows}),
        );
    }
    Ok(json!({"series": out, "moving_average_window": window, "summary": summary.join("\n")}))
}

fn cn_date(date: Date) -> String {
    format!("{}月{}日", u8::from(date.month()), date.day())
}

fn move_text(change_bp: Decimal) -> String {
    if change_bp.is_zero() {
        "持平".to_owned()
    } else if change_bp.is_sign_negative() {
        format!("下行{}个基点", -change_bp)
    } else {
        format!("上行{change_bp}个基点")
    }
}
