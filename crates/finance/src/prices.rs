//! Price histories as tools receive them: a JSON object of columns or a wide CSV (date plus one
//! column per asset, e.g. closes exported from AKShare's 收盘 per symbol).

use serde_json::Value;

use crate::error::{FinanceError, Result};
use crate::stats;
use crate::table::{ColumnSpec, Table, format_date};

/// Aligned price columns, one per asset.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceHistory {
    /// Asset names, in column order.
    pub assets: Vec<String>,
    /// Dates of the rows when the input had them.
    pub dates: Vec<String>,
    /// One price column per asset, all of the same length.
    pub columns: Vec<Vec<f64>>,
}

const DATE: ColumnSpec = ColumnSpec {
    name: "date",
    aliases: &["date", "日期", "交易日期", "trade_date", "净值日期"],
};

impl PriceHistory {
    /// Reads `{"ASSET": [p0, p1, …], …}` (field `prices`) or a wide CSV string (field `prices_csv`).
    pub fn from_params(params: &Value) -> Result<PriceHistory> {
        if let Some(text) = params.get("prices_csv").and_then(Value::as_str) {
            return PriceHistory::from_csv(text);
        }
        let Some(object) = params.get("prices").and_then(Value::as_object) else {
            return Err(FinanceError::invalid(
                "prices",
                "give `prices` as an object of price arrays per asset, or `prices_csv` as CSV text",
            ));
        };
        let mut assets = Vec::new();
        let mut columns = Vec::new();
        for (asset, series) in object {
            let items = series.as_array().ok_or_else(|| {
                FinanceError::invalid(format!("prices.{asset}"), "expected an array of prices")
            })?;
            let mut column = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let price =
                    item.as_f64().or_else(|| item.as_str().and_then(|s| s.trim().parse().ok()));
                column.push(price.ok_or_else(|| {
                    FinanceError::invalid(
                        format!("prices.{asset}[{index}]"),
                        format!("{item} is not a number"),
                    )
                })?);
            }
            assets.push(asset.clone());
            columns.push(column);
        }
        PriceHistory { assets, dates: Vec::new(), columns }.checked()
    }

    /// Reads a wide CSV: an optional date column and one numeric column per asset.
    pub fn from_csv(text: &str) -> Result<PriceHistory> {
        let table = Table::from_csv(text)?;
        let date_column = table.find(DATE);
        let mut assets = Vec::new();
        let mut columns = Vec::new();
        for (index, header) in table.headers().iter().enumerate() {
            if Some(index) == date_column {
                continue;
            }
            let mut column = Vec::with_capacity(table.len());
            for row in 0..table.len() {
                let text = table.cell(row, index);
                let value: f64 = text
                    .parse()
                    .map_err(|_| table.bad_cell(row, index, format!("{text:?} is not a price")))?;
                column.push(value);
            }
            assets.push(header.clone());
            columns.push(column);
        }
        let mut dates = Vec::new();
        if let Some(column) = date_column {
            for row in 0..table.len() {
                dates.push(format_date(table.date(row, column)?));
            }
        }
        PriceHistory { assets, dates, columns }.checked()
    }

    fn checked(self) -> Result<PriceHistory> {
        if self.assets.is_empty() {
            return Err(FinanceError::invalid("prices", "no assets: the portfolio is empty"));
        }
        let len = self.columns[0].len();
        for (asset, column) in self.assets.iter().zip(&self.columns) {
            if column.len() != len {
                return Err(FinanceError::invalid(
                    format!("prices.{asset}"),
                    format!(
                        "has {} prices but {} has {len}; series must be aligned",
                        column.len(),
                        self.assets[0]
                    ),
                ));
            }
        }
        if len < 3 {
            return Err(FinanceError::invalid(
                "prices",
                format!("need at least 3 prices per asset, got {len}"),
            ));
        }
        Ok(self)
    }

    /// Simple daily returns per asset.
    pub fn returns(&self) -> Result<Vec<Vec<f64>>> {
        self.assets
            .iter()
            .zip(&self.columns)
            .map(|(asset, column)| stats::simple_returns(column, &format!("prices.{asset}")))
            .collect()
    }

    /// The same history with columns in `order`, which must name every asset once. JSON objects
    /// arrive with sorted keys, and hierarchical clustering breaks ties by column order.
    pub fn reordered(self, order: &[String]) -> Result<PriceHistory> {
        if order.len() != self.assets.len() {
            return Err(FinanceError::invalid(
                "assets",
                format!("names {} assets but the prices have {}", order.len(), self.assets.len()),
            ));
        }
        let mut columns = Vec::with_capacity(order.len());
        for (index, name) in order.iter().enumerate() {
            let at = self.index_of(name).ok_or_else(|| {
                FinanceError::invalid(format!("assets[{index}]"), format!("no prices for {name:?}"))
            })?;
            columns.push(self.columns[at].clone());
        }
        Ok(PriceHistory { assets: order.to_vec(), dates: self.dates, columns })
    }

    /// The column index of `asset`.
    pub fn index_of(&self, asset: &str) -> Option<usize> {
        self.assets.iter().position(|name| name == asset)
    }
}
