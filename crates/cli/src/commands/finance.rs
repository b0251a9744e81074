//! `finllm finance`: the assistant's exact financial tools on the command line.
//!
//! Every subcommand builds the JSON parameters of one tool from flags and files and calls the same
//! entry point the server offers to the model (`finance::tools`), so the command line and the model
//! always get the same numbers. Output is the tool's JSON, or with `--text` its plain-language summary.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

/// Arguments of `finllm finance`.
#[derive(Debug, clap::Args)]
pub struct FinanceArgs {
    #[command(subcommand)]
    tool: Tool,
    /// Print the plain-language summary or findings instead of JSON (where the tool has them)
    #[arg(long, global = true)]
    text: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Tool {
    /// List every tool as an OpenAI function (name, description, JSON schema)
    Tools,
    /// Run any tool with JSON parameters
    Run {
        /// Tool name, as listed by `finllm finance tools`
        name: String,
        /// Parameters: JSON text, @FILE for a JSON file, or - for stdin
        #[arg(long, default_value = "{}")]
        json: String,
    },
    /// Open-market operations: maturities, injection/withdrawal, net, outstanding stock
    Liquidity {
        /// Operations as CSV (AKShare headers accepted) or a JSON array
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// First day, YYYY-MM-DD
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD
        #[arg(long)]
        to: Option<String>,
        /// Unit of the amounts [default: 亿元]
        #[arg(long)]
        unit: Option<String>,
    },
    /// Money-market rate series: bp changes, spreads to the policy rate, moving averages
    Rates {
        /// Wide CSV: date plus one column per series
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Policy rate in percent (e.g. 1.8) or the name of a series
        #[arg(long)]
        policy_rate: Option<String>,
        /// Moving-average window
        #[arg(long)]
        moving_average: Option<usize>,
        /// Series to compare with the policy rate, e.g. DR007 [default: all]
        #[arg(long, value_delimiter = ',')]
        compare: Vec<String>,
    },
    /// Portfolio diagnosis: concentration, exposure, volatility, drawdown, VaR, Sharpe, clusters
    Portfolio {
        /// Holdings: a JSON array of {symbol, quantity|value, asset_class, sector}
        #[arg(long, value_name = "PATH")]
        holdings: PathBuf,
        /// Prices: wide CSV (date + one column per symbol) or a JSON object
        #[arg(long, value_name = "PATH")]
        prices: PathBuf,
        /// VaR confidence [default: 0.95]
        #[arg(long)]
        confidence: Option<f64>,
        /// Annual risk-free rate [default: 0.02]
        #[arg(long)]
        risk_free_rate: Option<f64>,
    },
    /// Asset allocation: min variance, max Sharpe, frontier, risk parity, HRP, Black-Litterman
    Allocate {
        /// Prices: wide CSV (date + one column per asset) or a JSON object
        #[arg(long, value_name = "PATH")]
        prices: PathBuf,
        /// min-volatility, max-sharpe, efficient-return, efficient-risk, max-quadratic-utility, frontier,
        /// risk-parity, hrp, black-litterman
        #[arg(long, default_value = "max-sharpe")]
        method: String,
        /// Bounds for every asset as LOWER,UPPER [default: 0,1]
        #[arg(long, value_name = "LOWER,UPPER")]
        bounds: Option<String>,
        /// Annual risk-free rate [default: 0.02]
        #[arg(long)]
        risk_free_rate: Option<f64>,
        /// Target annual return (efficient-return)
        #[arg(long)]
        target_return: Option<f64>,
        /// Target annual volatility (efficient-risk)
        #[arg(long)]
        target_volatility: Option<f64>,
        /// Extra parameters as JSON (views, market_caps, risk_budgets, …)
        #[arg(long)]
        extra: Option<String>,
    },
    /// Investor suitability: questionnaire → C1–C5, product R1–R5, disclosure
    Suitability {
        /// Answers in question order, e.g. B,C,A,D,B,B,C,B,B,C (omit to print the questionnaire)
        #[arg(long, value_delimiter = ',')]
        answers: Vec<String>,
        /// A known investor level instead of answers
        #[arg(long)]
        level: Option<String>,
        /// The product's risk level R1–R5
        #[arg(long)]
        product: Option<String>,
        /// The investor insists after being told the product is unsuitable
        #[arg(long)]
        insists: bool,
        /// A professional investor
        #[arg(long)]
        professional: bool,
    },
    /// Loan schedule, true annualised rate (IRR), early repayment and legal-threshold flags
    Loan {
        /// Principal in yuan
        #[arg(long)]
        principal: String,
        /// Nominal annual rate as a fraction, e.g. 0.12
        #[arg(long)]
        rate: String,
        /// Term in months
        #[arg(long)]
        months: u32,
        /// equal-installment (等额本息), equal-principal (等额本金), interest-first (先息后本), flat (等本等息)
        #[arg(long, default_value = "equal-installment")]
        method: String,
        /// Fee deducted at disbursement, yuan
        #[arg(long)]
        upfront_fee: Option<String>,
        /// Fee paid with every instalment, yuan
        #[arg(long)]
        monthly_fee: Option<String>,
        /// One-year LPR as a fraction [default: 0.0345]
        #[arg(long)]
        lpr: Option<String>,
        /// Prepay right after this period
        #[arg(long)]
        prepay_after: Option<u32>,
        /// Principal prepaid [default: the whole balance]
        #[arg(long)]
        prepay_amount: Option<String>,
        /// Prepayment penalty as a fraction of the prepaid principal
        #[arg(long)]
        prepay_penalty_rate: Option<String>,
    },
    /// Small-loan company ratings with a configurable scorecard
    Rating {
        /// Companies: CSV or a JSON array
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// Scorecard as TOML or JSON [default: the built-in A–D card]
        #[arg(long, value_name = "PATH")]
        scorecard: Option<PathBuf>,
    },
    /// Lender industry statistics: companies, staff, loan balance, changes
    LenderStats {
        /// Rows: CSV or a JSON array (companies, staff, loan_balance in 亿元)
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
        /// The same rows at the comparison date
        #[arg(long, value_name = "PATH")]
        previous: Option<PathBuf>,
        /// Label of the reporting date, e.g. 2023年9月末
        #[arg(long)]
        as_of: Option<String>,
        /// Label of the comparison date, e.g. 年初
        #[arg(long)]
        previous_label: Option<String>,
    },
    /// Exact decimal calculator, e.g. "10000*(1+3.5%)^3"
    Calc {
        /// The expression
        expression: String,
        /// Round the result to this many places
        #[arg(long)]
        decimals: Option<u32>,
    },
    /// Financial ratios from statement items given as NAME=VALUE
    Ratios {
        /// Items such as revenue=1000 net_income=120 total_equity=800
        #[arg(value_name = "NAME=VALUE", required = true)]
        items: Vec<String>,
    },
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A data file as tool parameters: JSON files give `json_field`, anything else is CSV text in `csv_field`.
fn data_file(path: &Path, json_field: &str, csv_field: &str) -> anyhow::Result<(String, Value)> {
    let text = read(path)?;
    if path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("json")) {
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        Ok((json_field.to_owned(), value))
    } else {
        Ok((csv_field.to_owned(), Value::String(text)))
    }
}

fn insert<T: Into<Value>>(params: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(value) = value {
        params.insert(key.to_owned(), value.into());
    }
}

fn build(tool: &Tool) -> anyhow::Result<(&'static str, Value)> {
    let mut p = Map::new();
    let name = match tool {
        Tool::Tools | Tool::Run { .. } => {
            bail!("internal: this subcommand takes no tool parameters")
        }
        Tool::Liquidity { file, from, to, unit } => {
            let (key, value) = data_file(file, "operations", "csv")?;
            p.insert(key, value);
            insert(&mut p, "from", from.clone());
            insert(&mut p, "to", to.clone());
            insert(&mut p, "unit", unit.clone());
            "liquidity"
        }
        Tool::Rates { file, policy_rate, moving_average, compare } => {
            p.insert("csv".into(), read(file)?.into());
            insert(&mut p, "policy_rate", policy_rate.clone());
            insert(&mut p, "moving_average", *moving_average);
            if !compare.is_empty() {
                p.insert("compare".into(), json!(compare));
            }
            "rates"
        }
        Tool::Portfolio { holdings, prices, confidence, risk_free_rate } => {
            let holdings: Value =
                serde_json::from_str(&read(holdings)?).context("holdings must be a JSON array")?;
            p.insert("holdings".into(), holdings);
            let (key, value) = data_file(prices, "prices", "prices_csv")?;
            p.insert(key, value);
            insert(&mut p, "confidence", *confidence);
            insert(&mut p, "risk_free_rate", *risk_free_rate);
            "portfolio"
        }
        Tool::Allocate {
            prices,
            method,
            bounds,
            risk_free_rate,
            target_return,
            target_volatility,
            extra,
        } => {
            if let Some(extra) = extra {
                match serde_json::from_str(extra).context("--extra must be a JSON object")? {
                    Value::Object(map) => p.extend(map),
                    _ => bail!("--extra must be a JSON object"),
                }
            }
            let (key, value) = data_file(prices, "prices", "prices_csv")?;
            p.insert(key, value);
            p.insert("method".into(), method.replace('-', "_").into());
            if let Some(bounds) = bounds {
                let parts: Vec<f64> = bounds
                    .split(',')
                    .map(|x| x.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--bounds {bounds:?}: expected LOWER,UPPER"))?;
                p.insert("bounds".into(), json!(parts));
            }
            insert(&mut p, "risk_free_rate", *risk_free_rate);
            insert(&mut p, "target_return", *target_return);
            insert(&mut p, "target_volatility", *target_volatility);
            "allocate"
        }
        Tool::Suitability { answers, level, product, insists, professional } => {
            if !answers.is_empty() {
                p.insert("answers".into(), json!(answers));
            }
            insert(&mut p, "investor_level", level.clone());
            insert(&mut p, "product_risk", product.clone());
            p.insert("insists".into(), json!(insists));
            p.insert("professional".into(), json!(professional));
            "suitability"
        }
        Tool::Loan {
            principal,
            rate,
            months,
            method,
            upfront_fee,
            monthly_fee,
            lpr,
            prepay_after,
            prepay_amount,
            prepay_penalty_rate,
        } => {
            p.insert("principal".into(), principal.clone().into());
            p.insert("rate".into(), rate.clone().into());
            p.insert("months".into(), json!(months));
            p.insert("method".into(), method.clone().into());
            insert(&mut p, "upfront_fee", upfront_fee.clone());
            insert(&mut p, "monthly_fee", monthly_fee.clone());
            insert(&mut p, "lpr", lpr.clone());
            insert(&mut p, "prepay_after", *prepay_after);
            insert(&mut p, "prepay_amount", prepay_amount.clone());
            insert(&mut p, "prepay_penalty_rate", prepay_penalty_rate.clone());
            "loan"
        }
        Tool::Rating { file, scorecard } => {
            let (key, value) = data_file(file, "companies", "csv")?;
            p.insert(key, value);
            if let Some(path) = scorecard {
                p.insert("scorecard".into(), read(path)?.into());
            }
            "rating"
        }
        Tool::LenderStats { file, previous, as_of, previous_label } => {
            let (key, value) = data_file(file, "rows", "csv")?;
            p.insert(key, value);
            if let Some(path) = previous {
                let (key, value) = data_file(path, "previous", "previous_csv")?;
                p.insert(key, value);
            }
            insert(&mut p, "as_of", as_of.clone());
            insert(&mut p, "previous_label", previous_label.clone());
            "lender_stats"
        }
        Tool::Calc { expression, decimals } => {
            p.insert("expression".into(), expression.clone().into());
            insert(&mut p, "decimals", *decimals);
            "calc"
        }
        Tool::Ratios { items } => {
            for item in items {
                let Some((key, value)) = item.split_once('=') else {
                    bail!("{item:?}: expected NAME=VALUE");
                };
                p.insert(key.trim().to_owned(), value.trim().into());
            }
            "ratios"
        }
    };
    Ok((name, Value::Object(p)))
}

fn json_argument(text: &str) -> anyhow::Result<Value> {
    let source = if text == "-" {
        let mut buffer = String::new();
        std::io::stdin()
            .read_to_string(&mut buffer)
            .context("cannot read parameters from stdin")?;
        buffer
    } else if let Some(path) = text.strip_prefix('@') {
        read(Path::new(path))?
    } else {
        text.to_owned()
    };
    serde_json::from_str(&source).context("--json is not valid JSON")
}

/// Runs `finllm finance`.
pub fn run(args: &FinanceArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let (name, params) = match &args.tool {
        Tool::Tools => {
            serde_json::to_writer_pretty(&mut out, &finance::tools::openai_functions())?;
            writeln!(out)?;
            return Ok(());
        }
        Tool::Run { name, json } => {
            let tool = finance::tools::find(name).map(|t| t.name).with_context(|| {
                let names: Vec<&str> = finance::tools::registry().iter().map(|t| t.name).collect();
                format!("unknown tool {name:?}; tools: {}", names.join(", "))
            })?;
            (tool, json_argument(json)?)
        }
        tool => build(tool)?,
    };
    let result = finance::tools::run(name, params).with_context(|| format!("finance {name}"))?;
    if args.text {
        if let Some(text) = result.get("summary").and_then(Value::as_str) {
            writeln!(out, "{text}")?;
            return Ok(());
        }
        if let Some(findings) = result.get("findings").and_then(Value::as_array) {
            for line in findings.iter().filter_map(Value::as_str) {
                writeln!(out, "{line}")?;
            }
            return Ok(());
        }
        if let Some(value) = result.get("result") {
            writeln!(out, "{}", value.as_str().map_or_else(|| value.to_string(), str::to_owned))?;
            return Ok(());
        }
        if let Some(text) = result.get("disclosure").and_then(Value::as_str) {
            writeln!(out, "{text}")?;
            return Ok(());
        }
    }
    serde_json::to_writer_pretty(&mut out, &result)?;
    writeln!(out)?;
    Ok(())
}
