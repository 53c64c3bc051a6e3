//! The training data as `init` reads it: a CSV's header and rows as trimmed text, each row
//! with its line in the file so every problem can be named by line. No typing happens here;
//! what a column means is decided against the graph (`features`) and measured (`profile`).

use std::path::{Path, PathBuf};

use super::InitError;

/// A CSV file: its header and its rows, as text, each row with its line in the file.
#[derive(Debug)]
pub(super) struct Table {
    pub(super) path: PathBuf,
    pub(super) headers: Vec<String>,
    pub(super) rows: Vec<Vec<String>>,
    pub(super) lines: Vec<u64>,
}

impl Table {
    pub(super) fn index(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    pub(super) fn column(&self, name: &str) -> Option<Vec<&str>> {
        let index = self.index(name)?;
        Some(self.rows.iter().map(|row| row[index].as_str()).collect())
    }
}

pub(super) fn read_csv(path: &Path) -> Result<Table, InitError> {
    let data_error = |problem: String| InitError::Data {
        path: path.to_path_buf(),
        problems: vec![problem],
    };
    let mut reader = csv::Reader::from_path(path).map_err(|err| match err.into_kind() {
        csv::ErrorKind::Io(source) => InitError::Read {
            path: path.to_path_buf(),
            source,
        },
        other => data_error(format!("{other:?}")),
    })?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|err| data_error(err.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| data_error(err.to_string()))?;
        lines.push(
            record
                .position()
                .map_or(rows.len() as u64 + 2, csv::Position::line),
        );
        rows.push(record.iter().map(|cell| cell.trim().to_owned()).collect());
    }
    if rows.is_empty() {
        return Err(data_error("it has a header but no rows".into()));
    }
    Ok(Table {
        path: path.to_path_buf(),
        headers,
        rows,
        lines,
    })
}
