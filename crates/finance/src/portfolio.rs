//! Portfolio diagnosis (持仓诊断): weights, concentration (HHI, top-N), exposure by asset class and
//! sector, volatility, maximum drawdown, historical and parametric VaR/CVaR, Sharpe and Sortino,
//! clusters of highly correlated holdings, and findings in plain Chinese.
//!
//! Market values are `Decimal` (quantity × last price, the price taken from its shortest exact decimal
//! form); return statistics are `f64`. Holdings with quantities are valued buy-and-hold through the
//! price history; holdings given only by value are held at constant weights.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{FinanceError, Result, parse_params};
use crate::prices::PriceHistory;
use crate::stats::{self, TRADING_DAYS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Holding {
    symbol: String,
    #[serde(default)]
    quantity: Option<Decimal>,
    #[serde(default)]
    value: Option<Decimal>,
    #[serde(default)]
    asset_class: Option<String>,
    #[serde(default)]
    sector: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortfolioParams {
    holdings: Vec<Holding>,
    #[serde(default)]
    prices: Option<Value>,
    #[serde(default)]
    prices_csv: Option<String>,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    risk_free_rate: Option<f64>,
    #[serde(default)]
    top_n: Option<usize>,
    #[serde(default)]
    correlation_threshold: Option<f64>,
}

/// The JSON schema of the `portfolio` tool.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["holdings"],
        "properties": {
            "holdings": {"type": "array", "items": {"type": "object", "required": ["symbol"], "properties": {
                "symbol": {"type": "string"}, "quantity": {"type": "string", "description": "units held (valued at the last price)"},
                "value": {"type": "string", "description": "market value in yuan, instead of quantity"},
                "asset_class": {"type": "string", "description": "e.g. 股票, 债券, 货币, 商品; 现金/cash needs no prices"},
                "sector": {"type": "string"}}}},
            "prices": {"type": "object", "description": "symbol → prices oldest first", "additionalProperties": {"type": "array", "items": {"type": "number"}}},
            "prices_csv": {"type": "string", "description": "wide CSV: 日期/date and one close column per symbol"},
            "confidence": {"type": "number", "description": "VaR confidence, default 0.95"},
            "risk_free_rate": {"type": "number", "description": "annual, default 0.02"},
            "top_n": {"type": "integer", "description": "concentration of the largest N holdings, default 3"},
            "correlation_threshold": {"type": "number", "description": "holdings correlated at least this much form a cluster, default 0.8"}
        }
    })
}

fn is_cash(h: &Holding) -> bool {
    h.asset_class
        .as_deref()
        .is_some_and(|c| matches!(c.trim().to_lowercase().as_str(), "cash" | "现金" | "存款"))
}

fn yuan(x: Decimal) -> Decimal {
    let mut rounded = x.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded
}

fn pct(x: f64) -> String {
    Decimal::from_f64(x * 100.0)
        .map(|d| d.round_dp(2).normalize().to_string())
        .unwrap_or_else(|| "?".into())
}

fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// Runs the `portfolio` tool.
pub fn run(params: Value) -> Result<Value> {
    let p: PortfolioParams = parse_params(params)?;
    if p.holdings.is_empty() {
        return Err(FinanceError::invalid("holdings", "the portfolio is empty"));
    }
    let confidence = p.confidence.unwrap_or(0.95);
    if !(0.5..1.0).contains(&confidence) {
        return Err(FinanceError::invalid("confidence", "must be in [0.5, 1)"));
    }
    let rf = p.risk_free_rate.unwrap_or(0.02);
    let top_n = p.top_n.unwrap_or(3).max(1);
    let threshold = p.correlation_threshold.unwrap_or(0.8);
    let history =
        PriceHistory::from_params(&json!({"prices": p.prices, "prices_csv": p.prices_csv}))?;
    let days = history.columns[0].len();
    // Value every holding at the last price; a quantity needs a price column, cash does not.
    let mut values = Vec::with_capacity(p.holdings.len());
    let mut series: Vec<Option<usize>> = Vec::with_capacity(p.holdings.len());
    for (i, h) in p.holdings.iter().enumerate() {
        let column = history.index_of(&h.symbol);
        if column.is_none() && !is_cash(h) {
            return Err(FinanceError::invalid(
                format!("holdings[{i}].symbol"),
                format!(
                    "no prices for {:?} (symbols with prices: {})",
                    h.symbol,
                    history.assets.join(", ")
                ),
            ));
        }
        let value = match (h.quantity, h.value, column) {
            (Some(q), _, Some(c)) => {
                let last = history.columns[c][days - 1];
                let price = Decimal::from_str(&last.to_string())
                    .or_else(|_| Decimal::from_f64(last).ok_or(()));
                let price = price.map_err(|()| {
                    FinanceError::invalid(
                        format!("prices.{}", h.symbol),
                        "last price is not a decimal",
                    )
                })?;
                q * price
            }
            (_, Some(v), _) => v,
            (Some(q), None, None) => q,
            (None, None, _) => {
                return Err(FinanceError::invalid(
                    format!("holdings[{i}]"),
                    "give a quantity or a value",
                ));
            }
        };
        if value.is_sign_negative() {
            return Err(FinanceError::invalid(
                format!("holdings[{i}]"),
                "short positions are not supported",
            ));
        }
        values.push(value);
        series.push(column);
    }
    let total: Decimal = values.iter().sum();
    if total.is_zero() {
        return Err(FinanceError::invalid("holdings", "the portfolio's total value is zero"));
    }
    let weights: Vec<f64> = values.iter().map(|v| (v / total).to_f64().unwrap_or(0.0)).collect();
    // Portfolio daily returns: buy-and-hold when every priced holding has a quantity, else constant weights.
    let returns = history.returns()?;
    let buy_and_hold =
        p.holdings.iter().zip(&series).all(|(h, c)| c.is_none() || h.quantity.is_some());
    let path: Vec<f64> = if buy_and_hold {
        (0..days)
            .map(|t| {
                p.holdings
                    .iter()
                    .zip(&series)
                    .zip(&values)
                    .map(|((h, c), v)| match c {
                        Some(c) => {
                            h.quantity.and_then(|q| q.to_f64()).unwrap_or(0.0)
                                * history.columns[*c][t]
                        }
                        None => v.to_f64().unwrap_or(0.0),
                    })
                    .sum()
            })
            .collect()
    } else {
        let mut value = 1.0;
        let mut path = vec![value];
        #[allow(clippy::needless_range_loop, reason = "t indexes every asset's return column")]
        for t in 0..days - 1 {
            let r: f64 = weights
                .iter()
                .zip(&series)
                .map(|(w, c)| c.map_or(0.0, |c| w * returns[c][t]))
                .sum();
            value *= 1.0 + r;
            path.push(value);
        }
        path
    };
    let daily: Vec<f64> =
        path.windows(2).map(|w| if w[0] > 0.0 { w[1] / w[0] - 1.0 } else { 0.0 }).collect();
    let mean = stats::mean(&daily);
    let sd = stats::std_dev(&daily);
    let vol = sd * TRADING_DAYS.sqrt();
    let annual_mean = mean * TRADING_DAYS;
    let sharpe = (vol > 0.0).then(|| (annual_mean - rf) / vol);
    let target = rf / TRADING_DAYS;
    let downside = (daily.iter().map(|r| (r - target).min(0.0).powi(2)).sum::<f64>()
        / daily.len() as f64)
        .sqrt();
    let sortino = (downside > 0.0).then(|| (annual_mean - rf) / (downside * TRADING_DAYS.sqrt()));
    let (mdd, peak, trough) = stats::max_drawdown(&path);
    let (hist_var, hist_cvar) = stats::historical_var(&daily, confidence);
    let z = stats::normal_quantile(confidence);
    let param_var = -(mean - z * sd);
    let param_cvar = -(mean - sd * stats::normal_pdf(z) / (1.0 - confidence));
    let money = |loss: f64| Decimal::from_f64(loss).map(|l| yuan(l * total));
    // Concentration.
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| weights[*b].total_cmp(&weights[*a]));
    let hhi: f64 = weights.iter().map(|w| w * w).sum();
    let top_share: f64 = order.iter().take(top_n).map(|i| weights[*i]).sum();
    let mut by_class: BTreeMap<String, (f64, Decimal)> = BTreeMap::new();
    let mut by_sector: BTreeMap<String, (f64, Decimal)> = BTreeMap::new();
    for (i, h) in p.holdings.iter().enumerate() {
        let class = h.asset_class.clone().unwrap_or_else(|| "未分类".into());
        let sector = h.sector.clone().unwrap_or_else(|| "未分类".into());
        let entry = by_class.entry(class).or_default();
        entry.0 += weights[i];
        entry.1 += values[i];
        let entry = by_sector.entry(sector).or_default();
        entry.0 += weights[i];
        entry.1 += values[i];
    }
    let exposure = |m: &BTreeMap<String, (f64, Decimal)>| -> Value {
        Value::Object(
            m.iter()
                .map(|(k, (w, v))| (k.clone(), json!({"weight": w, "value": yuan(*v)})))
                .collect(),
        )
    };
    // Correlation clusters among priced holdings (union-find over pairs above the threshold).
    let priced: Vec<usize> = (0..p.holdings.len()).filter(|i| series[*i].is_some()).collect();
    let mut parent: Vec<usize> = (0..p.holdings.len()).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut pairs = Vec::new();
    for (a, &i) in priced.iter().enumerate() {
        for &j in &priced[a + 1..] {
            let (ci, cj) = (series[i].unwrap_or(0), series[j].unwrap_or(0));
            let (si, sj) = (stats::std_dev(&returns[ci]), stats::std_dev(&returns[cj]));
            if si == 0.0 || sj == 0.0 {
                continue;
            }
            let rho = stats::covariance(&returns[ci], &returns[cj]) / (si * sj);
            if rho >= threshold {
                pairs.push((i, j, rho));
                let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                parent[ri] = rj;
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in &priced {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let clusters: Vec<Value> = groups
        .values()
        .filter(|g| g.len() > 1)
        .map(|g| {
            let weight: f64 = g.iter().map(|i| weights[*i]).sum();
            json!({"symbols": g.iter().map(|i| p.holdings[*i].symbol.clone()).collect::<Vec<_>>(), "weight": weight})
        })
        .collect();
    // Findings in plain language.
    let mut findings = Vec::new();
    let first = order[0];
    if weights[first] > 0.3 {
        findings.push(format!(
            "单一持仓{}占比{}%，超过30%，集中度过高。",
            p.holdings[first].symbol,
            pct(weights[first])
        ));
    }
    if p.holdings.len() > top_n {
        findings.push(format!("前{top_n}大持仓合计占比{}%。", pct(top_share)));
    }
    findings.push(format!(
        "赫芬达尔指数HHI为{:.4}，相当于{:.1}只等权持仓{}。",
        hhi,
        1.0 / hhi,
        if hhi > 0.25 { "，分散程度不足" } else { "" }
    ));
    if let Some((class, (w, _))) = by_class.iter().max_by(|a, b| a.1.0.total_cmp(&b.1.0))
        && *w > 0.7
        && by_class.len() > 1
    {
        findings.push(format!("{class}类资产占比{}%，资产类别较为单一。", pct(*w)));
    }
    for (i, j, rho) in &pairs {
        findings.push(format!(
            "{}与{}的日收益相关系数为{:.2}，走势高度同步，分散效果有限。",
            p.holdings[*i].symbol, p.holdings[*j].symbol, rho
        ));
    }
    findings.push(format!("组合年化波动率{}%，历史最大回撤{}%。", pct(vol), pct(mdd)));
    if let Some(loss) = money(hist_var) {
        findings.push(format!(
            "按历史模拟法，在{}%置信度下单日损失预计不超过{}元（{}%）；极端情形下平均损失{}元。",
            pct(confidence),
            loss,
            pct(hist_var),
            money(hist_cvar).unwrap_or_default()
        ));
    }
    if let Some(s) = sharpe {
        findings.push(format!(
            "夏普比率{s:.2}{}。",
            if s < 0.0 { "，收益未能补偿所承担的风险" } else { "" }
        ));
    }
    let date_at = |i: usize| history.dates.get(i).cloned();
    Ok(json!({
        "total_value": yuan(total),
        "holdings": p.holdings.iter().enumerate().map(|(i, h)| json!({"symbol": h.symbol, "value": yuan(values[i]), "weight": weights[i]})).collect::<Vec<_>>(),
        "concentration": {"hhi": hhi, "effective_holdings": 1.0 / hhi, "top_n": top_n, "top_n_weight": top_share,
            "largest": p.holdings[first].symbol},
        "exposure": {"asset_class": exposure(&by_class), "sector": exposure(&by_sector)},
        "risk": {
            "observations": daily.len(),
            "annual_volatility": num(vol),
            "annual_return": num(stats::annualised_growth(&daily)),
            "max_drawdown": num(mdd),
            "max_drawdown_peak": date_at(peak).map_or(json!(peak), Value::from),
            "max_drawdown_trough": date_at(trough).map_or(json!(trough), Value::from),
            "confidence": confidence,
            "historical_var": num(hist_var), "historical_cvar": num(hist_cvar),
            "parametric_var": num(param_var), "parametric_cvar": num(param_cvar),
            "historical_var_amount": money(hist_var), "parametric_var_amount": money(param_var),
            "sharpe": sharpe.map(num), "sortino": sortino.map(num), "risk_free_rate": rf,
            "valuation": if buy_and_hold { "buy_and_hold" } else { "constant_weights" },
        },
        "correlation_clusters": clusters,
        "findings": findings,
    }))
}
