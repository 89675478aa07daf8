//! Imported category trends: seed 1's CSV (`event_date, campaign_country,
//! product_category_level_1..3, revenue_{daily,weekly,monthly}_change,
//! commission_{daily,weekly,monthly}_change`), for shops that compute trends elsewhere.
//!
//! An import replaces the previous one and is kept at `<data_dir>/category-trends/imported.json`
//! (written atomically), so it survives restarts. Every cell is checked: a bad one refuses the
//! whole file with its line and column (seed 1 silently read a bad number as 0.0). A file of
//! only a header is refused too, the previous import kept: it is what a failed upstream export
//! looks like, and replacing good rows with none would erase them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use storepulse_engine::category_trends::TrendRow;

use crate::sync::MutexExt;

pub struct ImportedTrends {
    path: PathBuf,
    rows: Mutex<Vec<TrendRow>>,
}

/// Why an import was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportRefusal {
    #[error(transparent)]
    Invalid(#[from] ImportError),
    /// A header and no rows.
    #[error("the CSV holds a header but no rows")]
    NoRows,
}

/// A file that is not seed 1's CSV: where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column:?}: {message}")]
pub struct ImportError {
    pub line: u64,
    pub column: String,
    pub message: String,
}

const COLUMNS: [&str; 11] = [
    "event_date",
    "campaign_country",
    "product_category_level_1",
    "product_category_level_2",
    "product_category_level_3",
    "revenue_daily_change",
    "revenue_weekly_change",
    "revenue_monthly_change",
    "commission_daily_change",
    "commission_weekly_change",
    "commission_monthly_change",
];

impl ImportedTrends {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("category-trends").join("imported.json");
        let rows = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| anyhow::anyhow!("{} is not valid: {error}", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
        };
        Ok(Self { path, rows: Mutex::new(rows) })
    }

    pub fn rows(&self) -> Vec<TrendRow> {
        self.rows.lock_ignoring_poison().clone()
    }

    /// How many rows the last import holds (0 when none).
    pub fn len(&self) -> usize {
        self.rows.lock_ignoring_poison().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parses `csv` and, when it holds rows and every one is valid, replaces the imported rows
    /// with them.
    pub fn import(&self, csv: &[u8]) -> Result<Result<usize, ImportRefusal>, std::io::Error> {
        let rows = match parse(csv) {
            Ok(rows) if rows.is_empty() => return Ok(Err(ImportRefusal::NoRows)),
            Ok(rows) => rows,
            Err(error) => return Ok(Err(error.into())),
        };
        self.save(&rows)?;
        let count = rows.len();
        *self.rows.lock_ignoring_poison() = rows;
        Ok(Ok(count))
    }

    fn save(&self, rows: &[TrendRow]) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(rows).map_err(std::io::Error::other)?;
        crate::files::write_atomically(&self.path, &bytes)
    }
}

/// Parses seed 1's CSV; the header must name the eleven columns (in any order).
pub fn parse(csv: &[u8]) -> Result<Vec<TrendRow>, ImportError> {
    let header_error = |message: String| ImportError { line: 1, column: String::new(), message };
    if csv.iter().all(u8::is_ascii_whitespace) {
        return Err(header_error(format!(
            "the body is empty; send seed 1's CSV, its header naming the columns {}",
            COLUMNS.join(", ")
        )));
    }
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(csv);
    let headers = reader.headers().map_err(|error| header_error(error.to_string()))?.clone();
    let mut index = [0usize; 11];
    for (slot, column) in index.iter_mut().zip(COLUMNS) {
        *slot = headers.iter().position(|name| name == column).ok_or_else(|| ImportError {
            line: 1,
            column: column.into(),
            message: "missing from the header".into(),
        })?;
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| ImportError {
            line: error.position().map_or(0, |position| position.line()),
            column: String::new(),
            message: error.to_string(),
        })?;
        let line = record.position().map_or(0, |position| position.line());
        let cell = |column: usize| record.get(index[column]).unwrap_or_default();
        let text = |column: usize| -> Result<String, ImportError> {
            let value = cell(column);
            if value.is_empty() {
                return Err(ImportError {
                    line,
                    column: COLUMNS[column].into(),
                    message: "is empty".into(),
                });
            }
            Ok(value.to_owned())
        };
        let optional_text =
            |column: usize| Some(cell(column).to_owned()).filter(|value| !value.is_empty());
        let number = |column: usize| -> Result<Option<f64>, ImportError> {
            let value = cell(column);
            if value.is_empty() {
                return Ok(None);
            }
            value.parse::<f64>().ok().filter(|number| number.is_finite()).map(Some).ok_or_else(
                || ImportError {
                    line,
                    column: COLUMNS[column].into(),
                    message: format!("{value:?} is not a number"),
                },
            )
        };
        let date = text(0)?;
        if chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_err() {
            return Err(ImportError {
                line,
                column: COLUMNS[0].into(),
                message: format!("{date:?} is not a YYYY-MM-DD date"),
            });
        }
        rows.push(TrendRow {
            event_date: date,
            country: text(1)?,
            category_level_1: text(2)?,
            category_level_2: optional_text(3),
            category_level_3: optional_text(4),
            revenue_week: None,
            revenue_daily_change: number(5)?,
            revenue_weekly_change: number(6)?,
            revenue_monthly_change: number(7)?,
            commission_daily_change: number(8)?,
            commission_weekly_change: number(9)?,
            commission_monthly_change: number(10)?,
            score: 0.0,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ones_sample_file_imports_completely() {
        let sample = include_bytes!("../../../data/category_trends_example.csv");
        let rows = parse(sample).unwrap_or_default();
        assert_eq!(rows.len(), 380);
        assert!(rows.iter().all(|row| row.event_date == "2025-02-09"));
        assert_eq!(rows.iter().filter(|row| row.country == "UK").count(), 30);
        let first = &rows[0];
        assert_eq!(first.category_level_3.as_deref(), Some("computer components"));
        assert_eq!(first.revenue_daily_change, Some(2.4228));
    }

    #[test]
    fn a_bad_cell_names_its_line_and_column() {
        let csv = "event_date,campaign_country,product_category_level_1,product_category_level_2,product_category_level_3,revenue_daily_change,revenue_weekly_change,revenue_monthly_change,commission_daily_change,commission_weekly_change,commission_monthly_change\n2025-02-09,US,toys,,,0.1,0.2,0.3,0,0,0\n2025-02-09,US,toys,,,0.1,lots,0.3,0,0,0\n";
        let error = parse(csv.as_bytes()).unwrap_err();
        assert_eq!((error.line, error.column.as_str()), (3, "revenue_weekly_change"));
        let error = parse(b"event_date,campaign_country\n").unwrap_err();
        assert_eq!(error.column, "product_category_level_1");
        let error = parse(b" \n").unwrap_err();
        assert!(error.message.starts_with("the body is empty"), "{}", error.message);
    }
}
