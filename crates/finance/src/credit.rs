//! Consumer credit: repayment schedules (等额本息, 等额本金, 先息后本, 等本等息), the true annualised
//! rate by IRR against the nominal one, early repayment, and flags at the legal rate thresholds.
//!
//! Schedules are in `Decimal` and rounded to the fen per period (half away from zero); the last
//! period takes the remaining balance, so every schedule amortises to exactly zero. The IRR is a rate,
//! not money, so it is solved in `f64` (bisection, then Newton) and reported rounded.
//!
//! Legal thresholds (comprehensive annual cost = IRR-based APR including fees):
//! - **4 × one-year LPR**: 《最高人民法院关于审理民间借贷案件适用法律若干问题的规定》(法释〔2020〕17号)
//!   第二十五条: courts do not support agreed interest above four times the one-year LPR at contract
//!   time. Per 法释〔2020〕27号 licensed lenders (small-loan and consumer-finance companies) are outside
//!   its scope, so the flag is the private-lending protection ceiling, not a licence limit. The one-year
//!   LPR was 3.45% from 2023-08-21 (the seed's month), the default here; pass `lpr` for another date.
//! - **24%**: the former protected line of 法释〔2015〕18号 第二十六条 (superseded in 2020), still the
//!   cap regulators expect of licensed consumer lenders' comprehensive cost.
//! - **36%**: 《关于规范整顿"现金贷"业务的通知》(整治办函〔2017〕141号): the comprehensive cost of
//!   cash loans, all fees included and annualised, must not exceed 36%; above it interest was void
//!   under 法释〔2015〕18号 第二十六条.
//! - PBOC 公告〔2021〕第3号 requires every loan offer to state its annualised rate; `apr` here is the
//!   monthly IRR × 12 (its simple-interest form), `effective_annual_rate` the compound form.

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, MathematicalOps, RoundingStrategy};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{FinanceError, Result, parse_params};

/// How a loan is repaid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// 等额本息: equal total instalments.
    #[serde(alias = "equal_installment", alias = "等额本息")]
    EqualInstallment,
    /// 等额本金: equal principal, falling interest.
    #[serde(alias = "equal_principal", alias = "等额本金")]
    EqualPrincipal,
    /// 先息后本: interest only, principal at the end.
    #[serde(alias = "interest_first", alias = "先息后本")]
    InterestFirst,
    /// 等本等息: interest on the original principal every month (a flat rate).
    #[serde(alias = "flat", alias = "等本等息")]
    Flat,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::EqualInstallment => "等额本息",
            Method::EqualPrincipal => "等额本金",
            Method::InterestFirst => "先息后本",
            Method::Flat => "等本等息",
        }
    }
}

/// One period of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based period.
    pub period: u32,
    /// Principal repaid.
    pub principal: Decimal,
    /// Interest paid.
    pub interest: Decimal,
    /// Fees paid this period (including any prepayment penalty).
    pub fee: Decimal,
    /// Extra principal prepaid at the end of this period.
    pub prepaid: Decimal,
    /// Balance after the payment.
    pub balance: Decimal,
}

impl Row {
    /// Everything paid this period.
    pub fn payment(&self) -> Decimal {
        self.principal + self.interest + self.fee + self.prepaid
    }
}

fn fen(x: Decimal) -> Decimal {
    let mut rounded = x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded
}

/// The equal instalment `P·r·(1+r)ⁿ/((1+r)ⁿ−1)`, rounded to the fen.
pub fn installment(principal: Decimal, monthly_rate: Decimal, months: u32) -> Result<Decimal> {
    if monthly_rate.is_zero() {
        return Ok(fen(principal / Decimal::from(months)));
    }
    let growth =
        (Decimal::ONE + monthly_rate).checked_powu(u64::from(months)).ok_or_else(|| {
            FinanceError::invalid("months", "the loan term overflows decimal arithmetic")
        })?;
    Ok(fen(principal * monthly_rate * growth / (growth - Decimal::ONE)))
}

/// Builds the schedule of `principal` over `months` from period `start` (1-based), with a per-period fee.
fn amortise(
    principal: Decimal,
    monthly_rate: Decimal,
    months: u32,
    method: Method,
    start: u32,
    fee: Decimal,
) -> Result<Vec<Row>> {
    let mut rows = Vec::with_capacity(months as usize);
    let mut balance = principal;
    let n = Decimal::from(months);
    let payment = installment(principal, monthly_rate, months)?;
    let equal_principal = fen(principal / n);
    let flat_interest = fen(principal * monthly_rate);
    for k in 1..=months {
        let last = k == months;
        let interest = match method {
            Method::Flat => flat_interest,
            _ => fen(balance * monthly_rate),
        };
        let principal_part = if last {
            balance
        } else {
            match method {
                Method::EqualInstallment => (payment - interest).min(balance),
                Method::EqualPrincipal | Method::Flat => equal_principal.min(balance),
                Method::InterestFirst => Decimal::ZERO,
            }
        };
        balance -= principal_part;
        rows.push(Row {
            period: start + k - 1,
            principal: principal_part,
            interest,
            fee,
            prepaid: Decimal::ZERO,
            balance,
        });
    }
    Ok(rows)
}

/// The internal rate of return per period of `flows` (flow 0 at time 0), or `None` when it has no root.
pub fn irr(flows: &[f64]) -> Option<f64> {
    let npv =
        |i: f64| flows.iter().enumerate().map(|(k, cf)| cf / (1.0 + i).powi(k as i32)).sum::<f64>();
    // Bracket the root from 0 outwards: rates near −100% overflow (1+i)^−k for long schedules.
    let at_zero = npv(0.0);
    if at_zero == 0.0 {
        return Some(0.0);
    }
    let (mut lo, mut hi) = (0.0, 0.0);
    let mut step: f64 = 0.01;
    loop {
        let probe = if at_zero > 0.0 { step } else { -step.min(0.99) };
        let value = npv(probe);
        if !value.is_finite() {
            return None;
        }
        if value.signum() != at_zero.signum() {
            if at_zero > 0.0 {
                hi = probe;
            } else {
                lo = probe;
            }
            break;
        }
        if step >= 10.0 || (at_zero < 0.0 && step >= 0.99) {
            return None;
        }
        step *= 2.0;
    }
    let f_lo = npv(lo);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if npv(mid).signum() == f_lo.signum() { lo = mid } else { hi = mid }
    }
    let mut i = 0.5 * (lo + hi);
    for _ in 0..5 {
        let derivative: f64 = flows
            .iter()
            .enumerate()
            .map(|(k, cf)| -(k as f64) * cf / (1.0 + i).powi(k as i32 + 1))
            .sum();
        if derivative == 0.0 {
            break;
        }
        let next = i - npv(i) / derivative;
        if !next.is_finite() || next <= -0.99 {
            break;
        }
        i = next;
    }
    Some(i)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoanParams {
    principal: Decimal,
    rate: Decimal,
    months: u32,
    #[serde(default = "default_method")]
    method: Method,
    #[serde(default)]
    upfront_fee: Decimal,
    #[serde(default)]
    monthly_fee: Decimal,
    #[serde(default)]
    lpr: Option<Decimal>,
    #[serde(default)]
    prepay_after: Option<u32>,
    #[serde(default)]
    prepay_amount: Option<Decimal>,
    #[serde(default)]
    prepay_penalty_rate: Decimal,
}

fn default_method() -> Method {
    Method::EqualInstallment
}

/// The JSON schema of the `loan` tool.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["principal", "rate", "months"],
        "properties": {
            "principal": {"type": "string", "description": "loan amount in yuan (decimal string or number)"},
            "rate": {"type": "string", "description": "nominal annual rate as a fraction, e.g. 0.12 for 12%"},
            "months": {"type": "integer", "minimum": 1, "maximum": 600},
            "method": {"type": "string", "enum": ["equal-installment", "equal-principal", "interest-first", "flat"],
                "description": "等额本息, 等额本金, 先息后本 or 等本等息 (flat: interest on the original principal)"},
            "upfront_fee": {"type": "string", "description": "fee deducted at disbursement, yuan"},
            "monthly_fee": {"type": "string", "description": "fee paid with every instalment, yuan"},
            "lpr": {"type": "string", "description": "one-year LPR as a fraction for the 4×LPR line, default 0.0345 (2023-11)"},
            "prepay_after": {"type": "integer", "description": "prepay right after this period's payment"},
            "prepay_amount": {"type": "string", "description": "principal prepaid (default: the whole balance); the rest is re-amortised over the remaining months"},
            "prepay_penalty_rate": {"type": "string", "description": "penalty as a fraction of the prepaid principal"}
        }
    })
}

fn ratio(x: f64) -> Value {
    json!(Decimal::from_f64(x).map(|d| d.round_dp(8).normalize()))
}

/// Runs the `loan` tool.
pub fn run(params: Value) -> Result<Value> {
    let p: LoanParams = parse_params(params)?;
    if p.principal <= Decimal::ZERO || p.principal > Decimal::from(1_000_000_000_000_000_i64) {
        return Err(FinanceError::invalid("principal", "must be positive and at most 1e15 yuan"));
    }
    if p.rate.is_sign_negative() || p.rate >= Decimal::from(10) {
        return Err(FinanceError::invalid(
            "rate",
            format!("{} is not an annual rate fraction such as 0.12", p.rate),
        ));
    }
    if p.months == 0 || p.months > 600 {
        return Err(FinanceError::invalid("months", "must be between 1 and 600"));
    }
    for (field, value) in [
        ("upfront_fee", p.upfront_fee),
        ("monthly_fee", p.monthly_fee),
        ("prepay_penalty_rate", p.prepay_penalty_rate),
    ] {
        if value.is_sign_negative() || value > p.principal {
            return Err(FinanceError::invalid(
                field,
                "must not be negative or exceed the principal",
            ));
        }
    }
    if p.upfront_fee >= p.principal {
        return Err(FinanceError::invalid("upfront_fee", "is not smaller than the principal"));
    }
    let monthly = p.rate / Decimal::from(12);
    let mut rows = amortise(p.principal, monthly, p.months, p.method, 1, p.monthly_fee)?;
    let original_interest: Decimal = rows.iter().map(|r| r.interest).sum();
    let mut prepayment = Value::Null;
    if let Some(after) = p.prepay_after {
        if after == 0 || after >= p.months {
            return Err(FinanceError::invalid(
                "prepay_after",
                format!("must be between 1 and {}", p.months - 1),
            ));
        }
        let at = after as usize - 1;
        let balance = rows[at].balance;
        let amount = p.prepay_amount.unwrap_or(balance);
        if amount <= Decimal::ZERO || amount > balance {
            return Err(FinanceError::invalid(
                "prepay_amount",
                format!("must be positive and at most the balance {balance}"),
            ));
        }
        let penalty = fen(amount * p.prepay_penalty_rate);
        rows.truncate(at + 1);
        let row = &mut rows[at];
        row.prepaid = amount;
        row.fee += penalty;
        row.balance = balance - amount;
        let remaining = p.months - after;
        if row.balance > Decimal::ZERO {
            let rest =
                amortise(row.balance, monthly, remaining, p.method, after + 1, p.monthly_fee)?;
            rows.extend(rest);
        }
        let new_interest: Decimal = rows.iter().map(|r| r.interest).sum();
        prepayment = json!({"after_period": after, "amount": amount, "penalty": penalty,
            "interest_saved": original_interest - new_interest - penalty});
    }
    let total_interest: Decimal = rows.iter().map(|r| r.interest).sum();
    let total_fees: Decimal = rows.iter().map(|r| r.fee).sum::<Decimal>() + p.upfront_fee;
    let total_paid: Decimal = rows.iter().map(Row::payment).sum();
    let mut flows = vec![-(p.principal - p.upfront_fee).to_f64().unwrap_or(0.0)];
    flows.extend(rows.iter().map(|r| r.payment().to_f64().unwrap_or(0.0)));
    let monthly_irr = irr(&flows).ok_or_else(|| {
        FinanceError::NoSolution("the cash flows have no internal rate of return".into())
    })?;
    let apr = monthly_irr * 12.0;
    let ear = (1.0 + monthly_irr).powi(12) - 1.0;
    let lpr = p.lpr.unwrap_or(Decimal::new(345, 4));
    let flags = rate_flags(apr, p.rate.to_f64().unwrap_or(0.0), lpr.to_f64().unwrap_or(0.0345));
    let schedule: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"period": r.period, "payment": r.payment(), "principal": r.principal, "interest": r.interest,
                   "fee": r.fee, "prepaid": r.prepaid, "balance": r.balance})
        })
        .collect();
    let summary = format!(
        "{}元{}个月{}，名义年利率{}%：总利息{}元，费用{}元，合计还款{}元；按IRR计算的实际年化利率{}%（复利{}%）。{}",
        p.principal.normalize(),
        p.months,
        p.method.name(),
        (p.rate * Decimal::ONE_HUNDRED).normalize(),
        total_interest,
        total_fees,
        total_paid + p.upfront_fee,
        Decimal::from_f64(apr * 100.0).map(|d| d.round_dp(2)).unwrap_or_default(),
        Decimal::from_f64(ear * 100.0).map(|d| d.round_dp(2)).unwrap_or_default(),
        flags.iter().filter_map(|f| f["message"].as_str()).collect::<Vec<_>>().join("")
    );
    Ok(json!({
        "method": p.method.name(),
        "principal": p.principal,
        "nominal_rate": p.rate,
        "months": p.months,
        "first_payment": rows.first().map(Row::payment),
        "total_interest": total_interest,
        "total_fees": total_fees,
        "total_paid": total_paid + p.upfront_fee,
        "monthly_irr": ratio(monthly_irr),
        "apr": ratio(apr),
        "effective_annual_rate": ratio(ear),
        "lpr": lpr,
        "flags": flags,
        "prepayment": prepayment,
        "schedule": schedule,
        "summary": summary,
    }))
}

/// Flags for the comprehensive annual cost `apr` (see the module comment for the rules).
fn rate_flags(apr: f64, nominal: f64, lpr: f64) -> Vec<Value> {
    let mut flags = Vec::new();
    let pct = |x: f64| {
        Decimal::from_f64(x * 100.0).map(|d| d.round_dp(2).normalize()).unwrap_or_default()
    };
    if apr > 0.36 + 1e-12 {
        flags.push(json!({"code": "above_36", "threshold": "0.36", "message": format!(
            "实际年化{}%超过36%：超出现金贷综合资金成本上限（整治办函〔2017〕141号）。", pct(apr))}));
    }
    if apr > 0.24 + 1e-12 {
        flags.push(json!({"code": "above_24", "threshold": "0.24", "message": format!(
            "实际年化{}%超过24%：超出原民间借贷司法保护线（法释〔2015〕18号第二十六条）及持牌消费信贷的监管预期。", pct(apr))}));
    }
    if apr > 4.0 * lpr + 1e-12 {
        flags.push(json!({"code": "above_4x_lpr", "threshold": ratio(4.0 * lpr), "message": format!(
            "实际年化{}%超过一年期LPR（{}%）的四倍{}%：超出民间借贷利率司法保护上限（法释〔2020〕17号第二十五条；持牌机构不适用，见法释〔2020〕27号）。",
            pct(apr), pct(lpr), pct(4.0 * lpr))}));
    }
    if apr - nominal > 0.01 {
        flags.push(json!({"code": "nominal_understates_cost", "message": format!(
            "名义利率{}%明显低于实际年化{}%：费用或按原始本金计息使实际成本更高。", pct(nominal), pct(apr))}));
    }
    flags
}
