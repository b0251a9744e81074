//! Tables from user files: CSV text or JSON rows, with English and AKShare-style Chinese headers.
//!
//! Users bring exports from AKShare, Wind or spreadsheets, so a column is found by any of several
//! accepted headers, and a bad cell is reported by its row and header instead of being skipped.

use rust_decimal::Decimal;
use serde_json::Value;
use time::{Date, Month};

use crate::error::{FinanceError, Result};

/// A rectangular table of text cells with a header row.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// A column to look up: its canonical name and every accepted header.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    /// The name used in errors and JSON.
    pub name: &'static str,
    /// Accepted headers (compared without case, spaces, underscores and parentheses content).
    pub aliases: &'static [&'static str],
}

fn normalise_header(header: &str) -> String {
    let head = header.split(['(', '（']).next().unwrap_or(header);
    head.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

impl Table {
    /// Parses CSV text with a header row (a leading UTF-8 byte-order mark is ignored).
    pub fn from_csv(text: &str) -> Result<Table> {
        let text = text.trim_start_matches('\u{feff}');
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|err| FinanceError::UnsupportedFormat(format!("CSV header: {err}")))?
            .iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let mut rows = Vec::new();
        for (index, record) in reader.records().enumerate() {
            let record = record.map_err(|err| {
                FinanceError::UnsupportedFormat(format!("CSV row {}: {err}", index + 1))
            })?;
            rows.push(record.iter().map(str::to_owned).collect());
        }
        Ok(Table { headers, rows })
    }

    /// Builds a table from a JSON array of objects; the headers are the union of keys in first-seen order.
    pub fn from_json_rows(value: &Value, field: &str) -> Result<Table> {
        let items = value
            .as_array()
            .ok_or_else(|| FinanceError::invalid(field, "expected an array of objects"))?;
        let mut headers: Vec<String> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let object = item.as_object().ok_or_else(|| {
                FinanceError::invalid(format!("{field}[{index}]"), "expected an object")
            })?;
            for key in object.keys() {
                if !headers.contains(key) {
                    headers.push(key.clone());
                }
            }
        }
        let rows = items
            .iter()
            .map(|item| {
                headers
                    .iter()
                    .map(|header| match item.get(header) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(text)) => text.trim().to_owned(),
                        Some(other) => other.to_string(),
                    })
                    .collect()
            })
            .collect();
        Ok(Table { headers, rows })
    }

    /// The table from JSON rows (field `field`) or, failing that, CSV text; `None` when neither is given.
    pub fn from_rows_or_csv(
        rows: Option<&Value>,
        csv: Option<&str>,
        field: &str,
    ) -> Result<Option<Table>> {
        match (rows, csv) {
            (Some(rows), _) => Table::from_json_rows(rows, field).map(Some),
            (None, Some(text)) => Table::from_csv(text).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// Like [`Table::from_rows_or_csv`], but a missing table is an error naming both fields.
    pub fn required(
        rows: Option<&Value>,
        csv: Option<&str>,
        field: &str,
        csv_field: &str,
    ) -> Result<Table> {
        Table::from_rows_or_csv(rows, csv, field)?.ok_or_else(|| {
            FinanceError::invalid(
                field,
                format!("give `{field}` (JSON rows) or `{csv_field}` (CSV text)"),
            )
        })
    }

    /// The header row as written.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The index of an optional column.
    pub fn find(&self, spec: ColumnSpec) -> Option<usize> {
        let wanted: Vec<String> =
            spec.aliases.iter().map(|alias| normalise_header(alias)).collect();
        self.headers.iter().position(|header| wanted.contains(&normalise_header(header)))
    }

    /// The index of a required column, or an error naming it and the accepted headers.
    pub fn require(&self, spec: ColumnSpec) -> Result<usize> {
        self.find(spec).ok_or_else(|| FinanceError::MissingColumn {
            column: spec.name.to_owned(),
            accepted: spec.aliases.join(", "),
            found: self.headers.join(", "),
        })
    }

    /// The trimmed cell text (empty when the row is short).
    pub fn cell(&self, row: usize, column: usize) -> &str {
        self.rows.get(row).and_then(|cells| cells.get(column)).map_or("", |cell| cell.trim())
    }

    /// An error for the cell at (`row`, `column`), with a 1-based row number.
    pub fn bad_cell(&self, row: usize, column: usize, message: impl Into<String>) -> FinanceError {
        FinanceError::BadCell {
            row: row + 1,
            column: self.headers.get(column).cloned().unwrap_or_default(),
            message: message.into(),
        }
    }

    /// The cell as a decimal, or an error naming row and column. Magnitudes above 1e18 are refused so
    /// that sums over any realistic table cannot overflow `Decimal`.
    pub fn decimal(&self, row: usize, column: usize) -> Result<Decimal> {
        let text = self.cell(row, column);
        let value = parse_decimal(text)
            .ok_or_else(|| self.bad_cell(row, column, format!("{text:?} is not a number")))?;
        if value.abs() > Decimal::from(1_000_000_000_000_000_000_i64) {
            return Err(self.bad_cell(row, column, format!("{text} is too large (limit 1e18)")));
        }
        Ok(value)
    }

    /// The cell as a date, or an error naming row and column.
    pub fn date(&self, row: usize, column: usize) -> Result<Date> {
        let text = self.cell(row, column);
        parse_date(text).ok_or_else(|| {
            self.bad_cell(
                row,
                column,
                format!("{text:?} is not a date (expected YYYY-MM-DD or YYYYMMDD)"),
            )
        })
    }
}

/// Parses a decimal written with optional thousands separators, a `%` sign (kept as percent points)
/// or surrounding spaces. Returns `None` for anything else, including the empty string.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let cleaned: String =
        text.trim().trim_end_matches('%').chars().filter(|c| *c != ',' && *c != '，').collect();
    if cleaned.is_empty() {
        return None;
    }
    cleaned.parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(&cleaned).ok())
}

/// Parses `2023-11-06`, `2023/11/06`, `2023.11.06`, `20231106` or `2023年11月6日`, optionally followed
/// by a time of day (ignored).
pub fn parse_date(text: &str) -> Option<Date> {
    let text = text.trim();
    let day_part = text.split([' ', 'T']).next().unwrap_or(text);
    let parts: Vec<&str> = if day_part.len() == 8 && day_part.chars().all(|c| c.is_ascii_digit()) {
        vec![&day_part[..4], &day_part[4..6], &day_part[6..]]
    } else {
        day_part.split(['-', '/', '.', '年', '月', '日']).filter(|part| !part.is_empty()).collect()
    };
    let [year, month, day] = parts.as_slice() else { return None };
    let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}
