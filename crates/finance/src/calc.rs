//! A calculator over decimals and the common financial ratios.
//!
//! Models should not do arithmetic in their heads, and money must not pass through binary floats, so
//! expressions are parsed here (never `eval`ed) and computed in `Decimal`: `+ - * / ^`, parentheses,
//! percentages (`3.5%`), Chinese magnitudes (`3万`, `1.2亿`) and a few functions (`round`, `floor`,
//! `ceil`, `abs`, `min`, `max`, `sqrt`, `ln`, `exp`, `pow`). Integer powers are exact; fractional
//! powers, roots and logarithms use rust_decimal's series and are accurate to about 1e-20.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, MathematicalOps, RoundingStrategy};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{FinanceError, Result, parse_params};

const MAX_LEN: usize = 2000;
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(Decimal),
    Ident(String),
    Op(char),
}

fn error(column: usize, message: impl Into<String>) -> FinanceError {
    FinanceError::invalid(format!("expression, column {column}"), message)
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() || c == '_' {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            let literal: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let value = literal
                .parse::<Decimal>()
                .map_err(|_| error(column, format!("{literal:?} is not a number")))?;
            tokens.push((column, Token::Number(value)));
        } else if c.is_alphabetic() && !matches!(c, '万' | '亿') {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() && !matches!(chars[i], '万' | '亿'))
            {
                i += 1;
            }
            tokens.push((
                column,
                Token::Ident(chars[start..i].iter().collect::<String>().to_lowercase()),
            ));
        } else {
            let op = match c {
                '×' => '*',
                '÷' => '/',
                '（' => '(',
                '）' => ')',
                '，' => ',',
                '－' => '-',
                '＋' => '+',
                '％' => '%',
                other => other,
            };
            if !"+-*/^(),%万亿".contains(op) {
                return Err(error(column, format!("unexpected character {c:?}")));
            }
            tokens.push((column, Token::Op(op)));
            i += 1;
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn column(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(c, _)| *c)
    }

    fn eat(&mut self, op: char) -> bool {
        if self.peek() == Some(&Token::Op(op)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Decimal> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error(self.column(), "expression nested too deeply"));
        }
        let mut value = self.term()?;
        loop {
            let column = self.column();
            if self.eat('+') {
                value = value
                    .checked_add(self.term()?)
                    .ok_or_else(|| error(column, "overflow in +"))?;
            } else if self.eat('-') {
                value = value
                    .checked_sub(self.term()?)
                    .ok_or_else(|| error(column, "overflow in -"))?;
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(value)
    }

    fn term(&mut self) -> Result<Decimal> {
        let mut value = self.unary()?;
        loop {
            let column = self.column();
            if self.eat('*') {
                value = value
                    .checked_mul(self.unary()?)
                    .ok_or_else(|| error(column, "overflow in *"))?;
            } else if self.eat('/') {
                let divisor = self.unary()?;
                if divisor.is_zero() {
                    return Err(error(column, "division by zero"));
                }
                value = value.checked_div(divisor).ok_or_else(|| error(column, "overflow in /"))?;
            } else {
                break;
            }
        }
        Ok(value)
    }

    fn unary(&mut self) -> Result<Decimal> {
        if self.eat('-') {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(error(self.column(), "expression nested too deeply"));
            }
            let value = -self.unary()?;
            self.depth -= 1;
            return Ok(value);
        }
        if self.eat('+') {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Result<Decimal> {
        let base = self.postfix()?;
        let column = self.column();
        if !self.eat('^') {
            return Ok(base);
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error(column, "expression nested too deeply"));
        }
        let exponent = self.unary()?;
        self.depth -= 1;
        power(base, exponent)
            .ok_or_else(|| error(column, format!("{base}^{exponent} is undefined or overflows")))
    }

    fn postfix(&mut self) -> Result<Decimal> {
        let mut value = self.primary()?;
        loop {
            let column = self.column();
            let factor = if self.eat('%') {
                Decimal::new(1, 2)
            } else if self.eat('万') {
                Decimal::from(10_000)
            } else if self.eat('亿') {
                Decimal::from(100_000_000)
            } else {
                break;
            };
            value = value.checked_mul(factor).ok_or_else(|| error(column, "overflow"))?;
        }
        Ok(value)
    }

    fn primary(&mut self) -> Result<Decimal> {
        let column = self.column();
        match self.tokens.get(self.at).map(|(_, t)| t.clone()) {
            Some(Token::Number(n)) => {
                self.at += 1;
                Ok(n)
            }
            Some(Token::Op('(')) => {
                self.at += 1;
                let value = self.expr()?;
                if !self.eat(')') {
                    return Err(error(self.column(), "expected ')'"));
                }
                Ok(value)
            }
            Some(Token::Ident(name)) => {
                self.at += 1;
                if !self.eat('(') {
                    return Err(error(
                        column,
                        format!("unknown name {name:?}; functions are called like round(x, 2)"),
                    ));
                }
                let mut args = Vec::new();
                if !self.eat(')') {
                    loop {
                        args.push(self.expr()?);
                        if self.eat(')') {
                            break;
                        }
                        if !self.eat(',') {
                            return Err(error(self.column(), "expected ',' or ')'"));
                        }
                    }
                }
                call(&name, &args).map_err(|message| error(column, message))
            }
            Some(Token::Op(op)) => Err(error(column, format!("unexpected {op:?}"))),
            None => Err(error(column, "unexpected end of expression")),
        }
    }
}

fn power(base: Decimal, exponent: Decimal) -> Option<Decimal> {
    if exponent.fract().is_zero() {
        let n = i64::try_from(exponent).ok()?;
        if base.is_zero() && n < 0 {
            return None;
        }
        base.checked_powi(n)
    } else if base.is_sign_negative() {
        None
    } else {
        base.checked_powd(exponent)
    }
}

fn call(name: &str, args: &[Decimal]) -> std::result::Result<Decimal, String> {
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{name} takes {n} argument(s), got {}", args.len()))
        }
    };
    let places = |x: Decimal| {
        u32::try_from(x)
            .ok()
            .filter(|p| *p <= 28)
            .ok_or_else(|| format!("{name}: decimal places must be 0..28"))
    };
    match name {
        "round" => {
            let dp = match args {
                [_] => 0,
                [_, dp] => places(*dp)?,
                _ => return Err(format!("round takes 1 or 2 arguments, got {}", args.len())),
            };
            Ok(args[0].round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero))
        }
        "floor" => arity(1).map(|()| args[0].floor()),
        "ceil" => arity(1).map(|()| args[0].ceil()),
        "abs" => arity(1).map(|()| args[0].abs()),
        "min" | "max" => {
            let pick =
                args.iter().copied().reduce(|a, b| if (name == "min") == (a <= b) { a } else { b });
            pick.ok_or_else(|| format!("{name} needs arguments"))
        }
        "sqrt" => {
            arity(1)?;
            args[0].sqrt().ok_or_else(|| "sqrt of a negative number".to_owned())
        }
        "ln" => {
            arity(1)?;
            if args[0] <= Decimal::ZERO {
                return Err("ln needs a positive argument".to_owned());
            }
            args[0].checked_ln().ok_or_else(|| "ln overflow".to_owned())
        }
        "exp" => {
            arity(1)?;
            args[0].checked_exp().ok_or_else(|| "exp overflows".to_owned())
        }
        "pow" => {
            arity(2)?;
            power(args[0], args[1]).ok_or_else(|| "pow is undefined or overflows".to_owned())
        }
        other => Err(format!(
            "unknown function {other:?} (round, floor, ceil, abs, min, max, sqrt, ln, exp, pow)"
        )),
    }
}

/// Evaluates an expression exactly in decimal.
pub fn evaluate(expression: &str) -> Result<Decimal> {
    if expression.chars().count() > MAX_LEN {
        return Err(FinanceError::invalid(
            "expression",
            format!("longer than {MAX_LEN} characters"),
        ));
    }
    let tokens = tokenize(expression)?;
    let end = expression.chars().count() + 1;
    let mut parser = Parser { tokens, at: 0, depth: 0, end };
    let value = parser.expr()?;
    if parser.at < parser.tokens.len() {
        return Err(error(parser.column(), "unexpected input after the expression"));
    }
    Ok(value.normalize())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalcParams {
    expression: String,
    #[serde(default)]
    decimals: Option<u32>,
}

/// The JSON schema of the `calc` tool.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["expression"],
        "properties": {
            "expression": {"type": "string", "description": "e.g. 10000*(1+3.5%)^3 or round(1.2亿/365, 2); operators + - * / ^, \
                parentheses, %, 万, 亿, functions round floor ceil abs min max sqrt ln exp pow"},
            "decimals": {"type": "integer", "description": "round the result to this many places (half away from zero)"}
        }
    })
}

/// Runs the `calc` tool.
pub fn run(params: Value) -> Result<Value> {
    let p: CalcParams = parse_params(params)?;
    let mut value = evaluate(&p.expression)?;
    if let Some(dp) = p.decimals {
        if dp > 28 {
            return Err(FinanceError::invalid("decimals", "must be 0..28"));
        }
        value = value.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    }
    Ok(json!({"expression": p.expression, "result": value}))
}

/// A ratio: its name, numerator terms added and subtracted, denominator, and Chinese label.
type RatioSpec =
    (&'static str, &'static [&'static str], &'static [&'static str], &'static str, &'static str);

/// The ratios the `ratios` tool knows.
const RATIOS: &[RatioSpec] = &[
    ("gross_margin", &["revenue"], &["cost_of_revenue"], "revenue", "毛利率"),
    ("net_margin", &["net_income"], &[], "revenue", "净利率"),
    ("roe", &["net_income"], &[], "total_equity", "净资产收益率"),
    ("roa", &["net_income"], &[], "total_assets", "总资产收益率"),
    ("current_ratio", &["current_assets"], &[], "current_liabilities", "流动比率"),
    ("quick_ratio", &["current_assets"], &["inventory"], "current_liabilities", "速动比率"),
    ("debt_to_assets", &["total_liabilities"], &[], "total_assets", "资产负债率"),
    ("debt_to_equity", &["total_liabilities"], &[], "total_equity", "产权比率"),
    ("interest_coverage", &["ebit"], &[], "interest_expense", "利息保障倍数"),
    ("asset_turnover", &["revenue"], &[], "total_assets", "总资产周转率"),
    (
        "operating_cash_flow_ratio",
        &["operating_cash_flow"],
        &[],
        "current_liabilities",
        "现金流动负债比",
    ),
    ("pe", &["price"], &[], "eps", "市盈率"),
    ("pb", &["price"], &[], "book_value_per_share", "市净率"),
    ("npl_ratio", &["non_performing_loans"], &[], "total_loans", "不良贷款率"),
    ("provision_coverage", &["loan_loss_provisions"], &[], "non_performing_loans", "拨备覆盖率"),
    ("capital_adequacy", &["regulatory_capital"], &[], "risk_weighted_assets", "资本充足率"),
];

/// The JSON schema of the `ratios` tool.
pub fn ratios_schema() -> Value {
    let mut fields: Vec<&str> = RATIOS
        .iter()
        .flat_map(|(_, plus, minus, den, _)| plus.iter().chain(minus.iter()).chain([den]))
        .copied()
        .collect();
    fields.sort_unstable();
    fields.dedup();
    let properties: serde_json::Map<String, Value> = fields
        .iter()
        .map(|f| ((*f).to_owned(), json!({"type": "string", "description": "decimal amount"})))
        .collect();
    json!({"type": "object", "properties": properties,
           "description": "statement items as decimals; every ratio whose inputs are present is computed"})
}

/// Runs the `ratios` tool.
pub fn run_ratios(params: Value) -> Result<Value> {
    let items: BTreeMap<String, Decimal> = parse_params(params)?;
    let known: Vec<&str> = RATIOS
        .iter()
        .flat_map(|(_, plus, minus, den, _)| plus.iter().chain(minus.iter()).chain([den]))
        .copied()
        .collect();
    if let Some(unknown) = items.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(FinanceError::invalid(
            unknown.as_str(),
            format!("unknown item; known items: {}", {
                let mut k = known.clone();
                k.sort_unstable();
                k.dedup();
                k.join(", ")
            }),
        ));
    }
    let mut ratios = serde_json::Map::new();
    let mut unavailable = serde_json::Map::new();
    for (name, plus, minus, den, label) in RATIOS {
        let needed: Vec<&str> = plus.iter().chain(minus.iter()).chain([den]).copied().collect();
        let missing: Vec<&str> =
            needed.iter().filter(|n| !items.contains_key(**n)).copied().collect();
        if missing.len() == needed.len() {
            continue;
        }
        if !missing.is_empty() {
            unavailable
                .insert((*name).to_owned(), json!(format!("missing {}", missing.join(", "))));
            continue;
        }
        let numerator: Decimal = plus.iter().map(|n| items[*n]).sum::<Decimal>()
            - minus.iter().map(|n| items[*n]).sum::<Decimal>();
        let denominator = items[*den];
        if denominator.is_zero() {
            unavailable.insert((*name).to_owned(), json!(format!("{den} is zero")));
            continue;
        }
        let value = numerator.checked_div(denominator).map(|v| {
            v.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero).normalize()
        });
        match value {
            Some(v) => {
                ratios.insert((*name).to_owned(), json!({"value": v, "label": label}));
            }
            None => {
                unavailable.insert((*name).to_owned(), json!("overflow"));
            }
        }
    }
    Ok(json!({"ratios": ratios, "unavailable": unavailable}))
}
