//! Central-bank open-market operations: import, maturities, daily/weekly/monthly injection and
//! withdrawal, outstanding stock by instrument, and a plain-language Chinese summary.
//!
//! Articles like the seed's ("18980亿元逆回购到期…净回笼6400亿元") are arithmetic over operations
//! and their maturities, so the tool derives every maturity from the operation date and tenor instead
//! of trusting typed-in totals. Amounts are `Decimal` in the unit the user gives (default 亿元).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Date, Duration, Month};

use crate::error::{FinanceError, Result, parse_params};
use crate::table::{ColumnSpec, Table, format_date, parse_date};

/// A monetary-policy instrument.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instrument {
    /// 逆回购: the central bank lends against collateral (injects).
    ReverseRepo,
    /// 买断式逆回购: outright reverse repo (injects).
    OutrightReverseRepo,
    /// 正回购: the central bank borrows (withdraws).
    Repo,
    /// 中期借贷便利 (MLF) (injects).
    Mlf,
    /// 常备借贷便利 (SLF) (injects).
    Slf,
    /// 抵押补充贷款 (PSL) (injects).
    Psl,
    /// 国库现金定存: treasury cash deposited at commercial banks (injects).
    TreasuryCashDeposit,
    /// 央行票据: central-bank bills (withdraw).
    CentralBankBill,
    /// Anything else; its direction must be given.
    Other(String),
}

impl Instrument {
    /// Recognises English and Chinese names.
    pub fn parse(text: &str) -> Instrument {
        let lower = text.trim().to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        if has(&["买断式", "outright"]) {
            Instrument::OutrightReverseRepo
        } else if has(&["逆回购", "reverse"]) {
            Instrument::ReverseRepo
        } else if has(&["正回购"]) || lower == "repo" {
            Instrument::Repo
        } else if has(&["mlf", "中期借贷"]) {
            Instrument::Mlf
        } else if has(&["slf", "常备借贷"]) {
            Instrument::Slf
        } else if has(&["psl", "抵押补充"]) {
            Instrument::Psl
        } else if has(&["国库现金", "treasury"]) {
            Instrument::TreasuryCashDeposit
        } else if has(&["央票", "央行票据", "bill"]) {
            Instrument::CentralBankBill
        } else {
            Instrument::Other(text.trim().to_owned())
        }
    }

    /// The Chinese name used in summaries.
    pub fn name(&self) -> &str {
        match self {
            Instrument::ReverseRepo => "逆回购",
            Instrument::OutrightReverseRepo => "买断式逆回购",
            Instrument::Repo => "正回购",
            Instrument::Mlf => "MLF",
            Instrument::Slf => "SLF",
            Instrument::Psl => "PSL",
            Instrument::TreasuryCashDeposit => "国库现金定存",
            Instrument::CentralBankBill => "央行票据",
            Instrument::Other(name) => name,
        }
    }

    /// Whether a new operation injects liquidity, when the instrument says so.
    fn injects(&self) -> Option<bool> {
        match self {
            Instrument::Repo | Instrument::CentralBankBill => Some(false),
            Instrument::Other(_) => None,
            _ => Some(true),
        }
    }
}

/// How long an operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenor {
    /// Calendar days (7天, 14D).
    Days(i64),
    /// Calendar months (6个月, 1年 = 12 months, 3M, 1Y).
    Months(u32),
}

impl Tenor {
    /// Parses `7`, `7天`, `7D`, `14日`, `3M`, `6个月`, `1Y`, `1年`; zero or negative is an error.
    pub fn parse(text: &str) -> std::result::Result<Tenor, String> {
        let t = text.trim().to_uppercase();
        let (number, unit) = t.split_at(
            t.find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '+')).unwrap_or(t.len()),
        );
        let n: i64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a tenor such as 7天, 14D, 6个月 or 1Y"))?;
        if n <= 0 {
            return Err(format!("tenor {text:?} must be positive"));
        }
        let months = |factor: i64| {
            u32::try_from(n * factor)
                .map(Tenor::Months)
                .map_err(|_| format!("tenor {text:?} is too long"))
        };
        match unit.trim() {
            "" | "天" | "日" | "D" | "DAY" | "DAYS" => Ok(Tenor::Days(n)),
            "个月" | "月" | "M" | "MONTH" | "MONTHS" => months(1),
            "年" | "Y" | "YEAR" | "YEARS" => months(12),
            other => Err(format!("unknown tenor unit {other:?} in {text:?}")),
        }
    }

    /// The maturity date of an operation on `date`.
    pub fn maturity(self, date: Date) -> Option<Date> {
        match self {
            Tenor::Days(days) => date.checked_add(Duration::days(days)),
            Tenor::Months(months) => {
                let total = i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1
                    + i64::from(months);
                let year = i32::try_from(total.div_euclid(12)).ok()?;
                let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
                let day = date.day().min(month.length(year));
                Date::from_calendar_date(year, month, day).ok()
            }
        }
    }

    fn label(self) -> String {
        match self {
            Tenor::Days(d) => format!("{d}天期"),
            Tenor::Months(m) if m % 12 == 0 => format!("{}年期", m / 12),
            Tenor::Months(m) => format!("{m}个月期"),
        }
    }
}

/// One open-market operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The operation (settlement) date.
    pub date: Date,
    /// The instrument.
    pub instrument: Instrument,
    /// Whether it injects (true) or withdraws (false) liquidity.
    pub injects: bool,
    /// Its tenor.
    pub tenor: Tenor,
    /// The date the flow reverses.
    pub maturity: Date,
    /// The amount, in the table's unit.
    pub amount: Decimal,
    /// The winning bid rate in percent, when given.
    pub rate: Option<Decimal>,
}

const DATE: ColumnSpec =
    ColumnSpec { name: "date", aliases: &["date", "日期", "操作日期", "交易日期"] };
const INSTRUMENT: ColumnSpec = ColumnSpec {
    name: "instrument",
    aliases: &["instrument", "type", "工具", "操作类型", "品种", "类型", "正/逆回购"],
};
const TENOR: ColumnSpec = ColumnSpec { name: "tenor", aliases: &["tenor", "期限", "tenor_days"] };
const AMOUNT: ColumnSpec = ColumnSpec {
    name: "amount",
    aliases: &["amount", "交易量", "操作量", "操作规模", "金额", "规模"],
};
const RATE: ColumnSpec = ColumnSpec { name: "rate", aliases: &["rate", "中标利率", "利率"] };
const DIRECTION: ColumnSpec =
    ColumnSpec { name: "direction", aliases: &["direction", "方向", "投放/回笼"] };

/// Reads operations from a table (CSV or JSON rows).
pub fn operations_from_table(table: &Table) -> Result<Vec<Operation>> {
    let (date, instrument, tenor, amount) = (
        table.require(DATE)?,
        table.require(INSTRUMENT)?,
        table.require(TENOR)?,
        table.require(AMOUNT)?,
    );
    let (rate, direction) = (table.find(RATE), table.find(DIRECTION));
    let mut ops = Vec::with_capacity(table.len());
    for row in 0..table.len() {
        let day = table.date(row, date)?;
        let kind = Instrument::parse(table.cell(row, instrument));
        let term = Tenor::parse(table.cell(row, tenor))
            .map_err(|message| table.bad_cell(row, tenor, message))?;
        let size = table.decimal(row, amount)?;
        if size.is_sign_negative() {
            return Err(table.bad_cell(
                row,
                amount,
                "amount must not be negative; use the direction column",
            ));
        }
        let rate = match rate {
            Some(column) if !table.cell(row, column).is_empty() => {
                Some(table.decimal(row, column)?)
            }
            _ => None,
        };
        let stated = match direction.map(|column| (column, table.cell(row, column))) {
            Some((column, text)) if !text.is_empty() => {
                Some(parse_direction(text).ok_or_else(|| {
                    table.bad_cell(
                        row,
                        column,
                        format!("{text:?} is not a direction (inject/withdraw, 投放/回笼)"),
                    )
                })?)
            }
            _ => None,
        };
        let injects = stated.or_else(|| kind.injects()).ok_or_else(|| {
            table.bad_cell(
                row,
                instrument,
                format!("unknown instrument {:?}: give a direction column", kind.name()),
            )
        })?;
        let maturity = term
            .maturity(day)
            .ok_or_else(|| table.bad_cell(row, tenor, "maturity date out of range"))?;
        ops.push(Operation {
            date: day,
            instrument: kind,
            injects,
            tenor: term,
            maturity,
            amount: size,
            rate,
        });
    }
    Ok(ops)
}

fn parse_direction(text: &str) -> Option<bool> {
    match text.trim().to_lowercase().as_str() {
        "inject" | "injection" | "投放" | "+" => Some(true),
        "withdraw" | "withdrawal" | "回笼" | "-" => Some(false),
        _ => None,
    }
}

/// The flows of one period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flows {
    /// New injecting operations.
    pub injection: Decimal,
    /// New withdrawing operations.
    pub withdrawal: Decimal,
    /// Injecting operations that mature (liquidity flows back to the central bank).
    pub maturing: Decimal,
    /// Withdrawing operations that mature (liquidity flows back to banks).
    pub maturing_withdrawals: Decimal,
}

impl Flows {
    /// Net injection (negative: net withdrawal).
    pub fn net(&self) -> Decimal {
        self.injection + self.maturing_withdrawals - self.withdrawal - self.maturing
    }

    fn add(&mut self, other: &Flows) {
        self.injection += other.injection;
        self.withdrawal += other.withdrawal;
        self.maturing += other.maturing;
        self.maturing_withdrawals += other.maturing_withdrawals;
    }

    fn to_json(&self) -> Value {
        json!({
            "injection": self.injection.normalize(),
            "withdrawal": self.withdrawal.normalize(),
            "maturing": self.maturing.normalize(),
            "maturing_withdrawals": self.maturing_withdrawals.normalize(),
            "net": self.net().normalize(),
        })
    }
}

/// Flows per calendar day, for every day with an operation or a maturity.
pub fn daily_flows(ops: &[Operation]) -> BTreeMap<Date, Flows> {
    let mut days: BTreeMap<Date, Flows> = BTreeMap::new();
    for op in ops {
        let new = days.entry(op.date).or_default();
        if op.injects {
            new.injection += op.amount;
        } else {
            new.withdrawal += op.amount;
        }
        let due = days.entry(op.maturity).or_default();
        if op.injects { due.maturing += op.amount } else { due.maturing_withdrawals += op.amount }
    }
    days
}

/// Outstanding injected (positive) and withdrawn (negative) stock per instrument at the end of `day`.
pub fn outstanding(ops: &[Operation], day: Date) -> BTreeMap<String, Decimal> {
    let mut stock: BTreeMap<String, Decimal> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.date <= day && day < op.maturity) {
        let entry = stock.entry(op.instrument.name().to_owned()).or_default();
        if op.injects { *entry += op.amount } else { *entry -= op.amount }
    }
    stock
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiquidityParams {
    #[serde(default)]
    operations: Option<Value>,
    #[serde(default)]
    csv: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    unit: Option<String>,
}

/// The JSON schema of the `liquidity` tool.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "operations": {"type": "array", "description": "operations: {date, instrument, tenor, amount, rate?, direction?}; \
                AKShare headers 操作日期/正/逆回购/期限/交易量/中标利率 are accepted",
                "items": {"type": "object"}},
            "csv": {"type": "string", "description": "the same operations as CSV text (instead of `operations`)"},
            "from": {"type": "string", "description": "first day of the report, YYYY-MM-DD (default: first operation)"},
            "to": {"type": "string", "description": "last day of the report, YYYY-MM-DD (default: last maturity)"},
            "unit": {"type": "string", "description": "unit of the amounts, default 亿元"}
        }
    })
}

fn cn_day(date: Date) -> String {
    format!("{}月{}日", u8::from(date.month()), date.day())
}

fn amount_text(value: Decimal, unit: &str) -> String {
    format!("{}{unit}", value.normalize())
}

fn net_text(net: Decimal, unit: &str) -> String {
    if net.is_zero() {
        "投放与回笼相抵".to_owned()
    } else if net.is_sign_negative() {
        format!("净回笼{}", amount_text(-net, unit))
    } else {
        format!("净投放{}", amount_text(net, unit))
    }
}

/// Runs the `liquidity` tool.
pub fn run(params: Value) -> Result<Value> {
    let p: LiquidityParams = parse_params(params)?;
    let table = Table::required(p.operations.as_ref(), p.csv.as_deref(), "operations", "csv")?;
    let ops = operations_from_table(&table)?;
    if ops.is_empty() {
        return Err(FinanceError::invalid("operations", "no operations"));
    }
    let unit = p.unit.unwrap_or_else(|| "亿元".to_owned());
    let day_param = |value: &Option<String>, field: &str| -> Result<Option<Date>> {
        value
            .as_deref()
            .map(|text| {
                parse_date(text)
                    .ok_or_else(|| FinanceError::invalid(field, format!("{text:?} is not a date")))
            })
            .transpose()
    };
    let first = ops.iter().map(|op| op.date).min().unwrap_or(Date::MIN);
    let last = ops.iter().map(|op| op.maturity).max().unwrap_or(Date::MAX);
    let from = day_param(&p.from, "from")?.unwrap_or(first);
    let to = day_param(&p.to, "to")?.unwrap_or(last);
    if from > to {
        return Err(FinanceError::invalid(
            "from",
            format!("{} is after `to` {}", format_date(from), format_date(to)),
        ));
    }
    let flows = daily_flows(&ops);
    let mut total = Flows::default();
    let mut weeks: BTreeMap<(i32, u8), (Date, Flows)> = BTreeMap::new();
    let mut months: BTreeMap<(i32, u8), Flows> = BTreeMap::new();
    let mut daily = Vec::new();
    for (day, flow) in flows.range(from..=to) {
        total.add(flow);
        let (year, week, _) = day.to_iso_week_date();
        let monday = *day - Duration::days(i64::from(day.weekday().number_days_from_monday()));
        weeks.entry((year, week)).or_insert_with(|| (monday, Flows::default())).1.add(flow);
        months.entry((day.year(), u8::from(day.month()))).or_default().add(flow);
        let mut row = flow.to_json();
        row["date"] = json!(format_date(*day));
        row["operations"] = ops
            .iter()
            .filter(|op| op.date == *day)
            .map(|op| json!({"instrument": op.instrument.name(), "tenor": op.tenor.label(), "amount": op.amount.normalize(),
                "rate": op.rate.map(|r| r.normalize()), "maturity": format_date(op.maturity)}))
            .collect();
        row["outstanding"] = json!(outstanding(&ops, *day));
        daily.push(row);
    }
    let weekly: Vec<Value> = weeks
        .iter()
        .map(|((year, week), (monday, flow))| {
            let mut row = flow.to_json();
            row["week"] = json!(format!("{year}-W{week:02}"));
            row["week_start"] = json!(format_date(*monday));
            row
        })
        .collect();
    let monthly: Vec<Value> = months
        .iter()
        .map(|((year, month), flow)| {
            let mut row = flow.to_json();
            row["month"] = json!(format!("{year}-{month:02}"));
            row
        })
        .collect();
    let summary = summarise(&ops, &flows, from, to, &total, &unit);
    let mut totals = total.to_json();
    totals["from"] = json!(format_date(from));
    totals["to"] = json!(format_date(to));
    Ok(json!({
        "unit": unit,
        "operations": ops.len(),
        "total": totals,
        "daily": daily,
        "weekly": weekly,
        "monthly": monthly,
        "outstanding_at_end": outstanding(&ops, to),
        "summary": summary,
    }))
}

fn summarise(
    ops: &[Operation],
    flows: &BTreeMap<Date, Flows>,
    from: Date,
    to: Date,
    total: &Flows,
    unit: &str,
) -> String {
    let mut lines = Vec::new();
    for (day, flow) in flows.range(from..=to) {
        let today: Vec<&Operation> = ops.iter().filter(|op| op.date == *day).collect();
        let mut parts = Vec::new();
        for op in &today {
            let verb = if op.injects { "开展" } else { "开展回笼性质的" };
            let rate = op.rate.map(|r| format!("，中标利率{}%", r.normalize())).unwrap_or_default();
            parts.push(format!(
                "{verb}{}{}{}操作{rate}",
                amount_text(op.amount, unit),
                op.tenor.label(),
                op.instrument.name()
            ));
        }
        if flow.maturing > Decimal::ZERO {
            parts.push(format!("当日有{}到期", amount_text(flow.maturing, unit)));
        }
        if flow.maturing_withdrawals > Decimal::ZERO {
            parts.push(format!("{}回笼操作到期", amount_text(flow.maturing_withdrawals, unit)));
        }
        if parts.is_empty() {
            continue;
        }
        lines.push(format!(
            "{}：{}，公开市场{}。",
            cn_day(*day),
            parts.join("；"),
            net_text(flow.net(), unit)
        ));
    }
    let maturing_days: Vec<String> = flows
        .range(from..=to)
        .filter(|(_, f)| f.maturing > Decimal::ZERO)
        .map(|(day, f)| format!("{}{}", cn_day(*day), amount_text(f.maturing, unit)))
        .collect();
    let mut head = format!(
        "{}至{}：公开市场投放{}，到期{}，{}。",
        cn_day(from),
        cn_day(to),
        amount_text(total.injection, unit),
        amount_text(total.maturing, unit),
        net_text(total.net(), unit)
    );
    if !maturing_days.is_empty() {
        head.push_str(&format!("到期分布：{}。", maturing_days.join("、")));
    }
    let stock = outstanding(ops, to);
    if !stock.is_empty() {
        let parts: Vec<String> = stock
            .iter()
            .map(|(name, value)| format!("{name}{}", amount_text(*value, unit)))
            .collect();
        head.push_str(&format!("{}末存量：{}。", cn_day(to), parts.join("、")));
    }
    lines.insert(0, head);
    lines.join("\n")
}
