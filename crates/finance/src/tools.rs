//! The tool registry: every finance tool with its name, description, JSON schema and entry point.
//!
//! One list serves every caller: the CLI (`finllm finance run <tool>`), and the server, which offers
//! [`openai_functions`] to the model in assistant mode and serves `/v1/tools/<name>` through [`run`].

use serde_json::{Value, json};

use crate::error::{FinanceError, Result};
use crate::{allocation, calc, credit, liquidity, portfolio, rates, rating, suitability};

/// A finance tool.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The function name offered to the model (snake_case, stable).
    pub name: &'static str,
    /// What it does, for the model and for `finllm finance tools`.
    pub description: &'static str,
    /// Builds the JSON schema of its parameters.
    pub schema: fn() -> Value,
    /// Runs it.
    pub run: fn(Value) -> Result<Value>,
}

impl Tool {
    /// The tool as an OpenAI `tools` entry: `{"type": "function", "function": {name, description, parameters}}`.
    pub fn openai_function(&self) -> Value {
        json!({"type": "function", "function": {"name": self.name, "description": self.description, "parameters": (self.schema)()}})
    }
}

static REGISTRY: [Tool; 10] = [
    Tool {
        name: "liquidity",
        description: "Central-bank open-market operations (reverse repo, MLF, …): maturities derived from tenors, daily/weekly/monthly \
            injection, maturity and net injection or withdrawal, outstanding stock by instrument, and a Chinese summary.",
        schema: liquidity::schema,
        run: liquidity::run,
    },
    Tool {
        name: "rates",
        description: "Money-market rate series (Shibor, DR007, repo): basis-point changes, spreads to the policy rate, moving \
            averages and a Chinese summary.",
        schema: rates::schema,
        run: rates::run,
    },
    Tool {
        name: "portfolio",
        description: "Portfolio diagnosis (持仓诊断): weights, HHI and top-N concentration, exposure by asset class and sector, \
            volatility, max drawdown, historical and parametric VaR/CVaR, Sharpe, Sortino, correlated clusters and findings.",
        schema: portfolio::schema,
        run: portfolio::run,
    },
    Tool {
        name: "allocate",
        description: "Asset allocation (资产配置): minimum variance, maximum Sharpe, efficient return/risk, efficient frontier, \
            risk parity, hierarchical risk parity and Black-Litterman, with long-only and per-asset bounds.",
        schema: allocation::schema,
        run: allocation::run,
    },
    Tool {
        name: "suitability",
        description: "Investor suitability under Chinese rules: risk questionnaire → C1–C5, product R1–R5 match, and the \
            required risk disclosure. Call without answers to get the questionnaire.",
        schema: suitability::schema,
        run: suitability::run,
    },
    Tool {
        name: "loan",
        description: "Consumer loan schedule (等额本息, 等额本金, 先息后本, 等本等息) with fees, true annualised rate by IRR vs \
            the nominal rate, early repayment, and flags at the 24%, 36% and 4×LPR lines.",
        schema: credit::schema,
        run: credit::run,
    },
    Tool {
        name: "rating",
        description: "Small-loan company ratings with a configurable scorecard (TOML/JSON) over regulatory indicators: \
            scores, grades (A–D, AAA…C), renewals, problem-company and privilege notes, and the grade distribution.",
        schema: rating::schema,
        run: rating::run,
    },
    Tool {
        name: "lender_stats",
        description: "Industry statistics for lenders (e.g. the PBOC's small-loan company report): number of companies, staff, \
            loan balance in 亿元 and billions, and changes against a previous date.",
        schema: rating::stats_schema,
        run: rating::run_stats,
    },
    Tool {
        name: "calc",
        description: "Exact decimal calculator: + - * / ^, parentheses, %, 万, 亿, round/floor/ceil/abs/min/max/sqrt/ln/exp/pow. \
            Use it for every arithmetic step instead of computing in your head.",
        schema: calc::schema,
        run: calc::run,
    },
    Tool {
        name: "ratios",
        description: "Financial ratios from statement items: margins, ROE, ROA, liquidity, leverage, coverage, valuation and \
            bank asset-quality ratios.",
        schema: calc::ratios_schema,
        run: calc::run_ratios,
    },
];

/// Every tool, in a stable order.
pub fn registry() -> &'static [Tool] {
    &REGISTRY
}

/// The tool called `name`.
pub fn find(name: &str) -> Option<&'static Tool> {
    REGISTRY.iter().find(|tool| tool.name == name)
}

/// Runs the tool `name` on `params`; an unknown name is an error listing the known ones.
pub fn run(name: &str, params: Value) -> Result<Value> {
    let tool = find(name).ok_or_else(|| {
        FinanceError::invalid(
            "tool",
            format!("unknown tool {name:?}; tools: {}", REGISTRY.map(|t| t.name).join(", ")),
        )
    })?;
    (tool.run)(params)
}

/// All tools as the OpenAI `tools` array.
pub fn openai_functions() -> Value {
    Value::Array(REGISTRY.iter().map(Tool::openai_function).collect())
}
