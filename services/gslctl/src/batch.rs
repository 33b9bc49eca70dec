//! Batch files: the layouts operators already use.
//!
//! CSV or xlsx (first sheet only, at most 10 MB). Column A is the container
//! id (ICCID for physical cards); further columns depend on the operation:
//! rebind takes B = bind type (`normal` / `fixed_imei`, also `普通` / `固定`)
//! and C = IMEI; region bind takes B = region (`240_辽宁省` or `240`). A first
//! row whose column A is not a card id is a header. Blank rows and duplicate
//! ids are errors (domain.md: "no blank rows and no duplicate ids").

use gsl_domain::ids::{CardId, Imei};
use gsl_domain::limits::BATCH_FILE_MAX_BYTES;
use gsl_domain::region::Region;
use gsl_domain::{ErrorCode, OperationKind};
use gsl_proto::v1;
use std::collections::HashSet;
use std::path::Path;
use thiserror::Error;

/// One data row as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based row number in the file (what a spreadsheet shows).
    pub line: usize,
    pub cells: Vec<String>,
}

/// A row that cannot be sent, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: usize,
    pub card: String,
    pub code: ErrorCode,
    pub reason: String,
}

#[derive(Debug, Error)]
pub enum FileError {
    #[error("{0}: cannot read: {1}")]
    Io(String, String),
    #[error("{0}: larger than 10 MB ({1} bytes)")]
    TooLarge(String, u64),
    #[error("{0}: only .csv and .xlsx files are read")]
    Format(String),
    #[error("{0}: {1}")]
    Parse(String, String),
}

/// Read a CSV or xlsx file into rows (header row skipped).
pub fn read(path: &Path) -> Result<Vec<Row>, FileError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| FileError::Io(name.clone(), e.to_string()))?;
    if meta.len() > BATCH_FILE_MAX_BYTES as u64 {
        return Err(FileError::TooLarge(name, meta.len()));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let mut rows = match ext.as_deref() {
        Some("csv") | Some("txt") => read_csv(path, &name)?,
        Some("xlsx") => read_xlsx(path, &name)?,
        _ => return Err(FileError::Format(name)),
    };
    if let Some(first) = rows.first()
        && is_header(first)
    {
        rows.remove(0);
    }
    Ok(rows)
}

/// Names operators give column A; some (`id`, `card`) are valid container ids,
/// so they are recognised by name.
const HEADER_NAMES: &[&str] = &[
    "id",
    "card",
    "card id",
    "card_id",
    "iccid",
    "cid",
    "container id",
    "container_id",
    "卡号",
    "容器id",
];

fn is_header(r: &Row) -> bool {
    let a = r.cells.first().map(|s| s.trim()).unwrap_or("");
    let unparseable =
        !a.is_empty() && CardId::parse(a).is_err() && !a.bytes().all(|b| b.is_ascii_digit());
    unparseable || HEADER_NAMES.contains(&a.to_ascii_lowercase().as_str())
}

fn read_csv(path: &Path, name: &str) -> Result<Vec<Row>, FileError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| FileError::Io(name.to_owned(), e.to_string()))?;
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec =
            rec.map_err(|e| FileError::Parse(name.to_owned(), format!("row {}: {e}", i + 1)))?;
        rows.push(Row {
            line: i + 1,
            cells: rec.iter().map(str::to_owned).collect(),
        });
    }
    Ok(rows)
}

/// Rows a sheet may have: the largest upload (100,000 activations) and a header.
pub const XLSX_MAX_ROWS: u32 = 100_001;
/// Columns a sheet may have (the widest layout, card import, uses 11).
pub const XLSX_MAX_COLUMNS: u32 = 32;

/// Read the first sheet cell by cell. A sheet's declared used range is
/// checked before anything is read, and every cell again as it comes: a tiny
/// file that declares (or places a cell at) `XFD1048576` is refused instead
/// of allocating the dense range.
fn read_xlsx(path: &Path, name: &str) -> Result<Vec<Row>, FileError> {
    use calamine::{DataRef, Reader, Xlsx, open_workbook};
    let parse = |e: calamine::XlsxError| FileError::Parse(name.to_owned(), e.to_string());
    let mut wb: Xlsx<_> = open_workbook(path).map_err(parse)?;
    let first = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| FileError::Parse(name.to_owned(), "the workbook has no sheet".into()))?;
    let mut cells = wb.worksheet_cells_reader(&first).map_err(parse)?;
    let too_big = |rows: u64, cols: u64| {
        FileError::Parse(
            name.to_owned(),
            format!(
                "the first sheet's used range is {rows} rows x {cols} columns; at most {XLSX_MAX_ROWS} rows and {XLSX_MAX_COLUMNS} columns are read (delete the empty rows and columns below and right of the data)"
            ),
        )
    };
    let d = cells.dimensions();
    let (rows, cols) = (
        u64::from(d.end.0.saturating_sub(d.start.0)) + 1,
        u64::from(d.end.1.saturating_sub(d.start.1)) + 1,
    );
    if rows > u64::from(XLSX_MAX_ROWS) || cols > u64::from(XLSX_MAX_COLUMNS) {
        return Err(too_big(rows, cols));
    }
    let mut by_row: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    while let Some(cell) = cells.next_cell().map_err(parse)? {
        let (r, c) = cell.get_position();
        if r >= XLSX_MAX_ROWS || c >= XLSX_MAX_COLUMNS {
            return Err(too_big(u64::from(r) + 1, u64::from(c) + 1));
        }
        let text = match cell.get_value() {
            DataRef::Empty => String::new(),
            // Long digit strings typed as numbers lose nothing below 2^53; ICCIDs
            // should be text, and a float would have lost digits: report it.
            DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", *f as i64),
            DataRef::Int(n) => n.to_string(),
            DataRef::Float(f) => f.to_string(),
            DataRef::String(s) => s.trim().to_owned(),
            DataRef::SharedString(s) => s.trim().to_owned(),
            DataRef::Bool(b) => b.to_string(),
            DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
            DataRef::DateTime(t) => t.to_string(),
            DataRef::Error(e) => e.to_string(),
        };
        let row = by_row.entry(r).or_default();
        let c = c as usize;
        if row.len() <= c {
            row.resize(c + 1, String::new());
        }
        row[c] = text;
    }
    // Rows between the first and last are kept, empty ones too (blank rows
    // are an error the caller reports with their line number).
    let (Some(&lo), Some(&hi)) = (by_row.keys().next(), by_row.keys().next_back()) else {
        return Ok(Vec::new());
    };
    Ok((lo..=hi)
        .map(|r| Row {
            line: r as usize + 1,
            cells: by_row.remove(&r).unwrap_or_default(),
        })
        .collect())
}

fn bind_type(s: &str) -> Option<v1::BindType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "normal" | "普通" => Some(v1::BindType::Normal),
        "fixed_imei" | "fixed" | "固定" | "2" => Some(v1::BindType::FixedImei),
        _ => None,
    }
}

/// Turn rows into card references for an operation, finding every bad row.
pub fn cards(op: OperationKind, rows: &[Row]) -> (Vec<v1::CardRef>, Vec<RowProblem>) {
    let mut refs = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for r in rows {
        let cell = |i: usize| r.cells.get(i).map(|s| s.trim()).unwrap_or("");
        let raw = cell(0);
        let mut bad = |code: ErrorCode, reason: String| {
            problems.push(RowProblem {
                line: r.line,
                card: raw.to_owned(),
                code,
                reason,
            })
        };
        if r.cells.iter().all(|c| c.trim().is_empty()) {
            bad(ErrorCode::BadParameter, "blank row".into());
            continue;
        }
        let id = match CardId::parse(raw) {
            Ok(id) => id,
            Err(e) => {
                bad(e.code(), e.to_string());
                continue;
            }
        };
        if !seen.insert(id.key().to_owned()) {
            bad(
                ErrorCode::DuplicateCard,
                "card appears earlier in the file".into(),
            );
            continue;
        }
        let mut cr = v1::CardRef {
            id: id.key().to_owned(),
            ..Default::default()
        };
        match op {
            OperationKind::Rebind => {
                match bind_type(cell(1)) {
                    Some(b) => cr.bind_type = Some(b as i32),
                    None => {
                        bad(
                            ErrorCode::InvalidItemParameter,
                            format!("bind type {:?}: expected normal or fixed_imei", cell(1)),
                        );
                        continue;
                    }
                }
                if !cell(2).is_empty() {
                    if let Err(e) = Imei::parse(cell(2)) {
                        bad(e.code(), e.to_string());
                        continue;
                    }
                    cr.imei = cell(2).to_owned();
                } else if cr.bind_type == Some(v1::BindType::FixedImei as i32) {
                    bad(
                        ErrorCode::InvalidItemParameter,
                        "a fixed-IMEI rebind needs the IMEI in column C".into(),
                    );
                    continue;
                }
            }
            OperationKind::RegionBind if !cell(1).is_empty() => match Region::parse(cell(1)) {
                Ok(reg) => cr.region = reg.to_string(),
                Err(e) => {
                    bad(ErrorCode::InvalidItemParameter, e.to_string());
                    continue;
                }
            },
            _ => {}
        }
        refs.push(cr);
    }
    (refs, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: usize, cells: &[&str]) -> Row {
        Row {
            line,
            cells: cells.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn headers_are_recognised() {
        assert!(is_header(&row(1, &["ICCID", "bind type"])));
        assert!(is_header(&row(1, &["卡号"])));
        let iccid = gsl_domain::Iccid::from_payload("898603000000000001").unwrap();
        assert!(!is_header(&row(1, &[iccid.as_str()])));
        assert!(
            !is_header(&row(1, &["8986031234"])),
            "a bad ICCID is a data row with a problem, not a header"
        );
    }

    #[test]
    fn rebind_columns() {
        let a = gsl_domain::Iccid::from_payload("898603000000000001")
            .unwrap()
            .to_string();
        let b = gsl_domain::Iccid::from_payload("898603000000000002")
            .unwrap()
            .to_string();
        let c = gsl_domain::Iccid::from_payload("898603000000000003")
            .unwrap()
            .to_string();
        let rows = vec![
            row(2, &[&a, "fixed_imei", "490154203237518"]),
            row(3, &[&b, "fixed_imei", ""]),
            row(4, &[&a, "normal", ""]),
            row(5, &["", "", ""]),
            row(6, &[&c, "sideways", ""]),
        ];
        let (refs, problems) = cards(OperationKind::Rebind, &rows);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].imei, "490154203237518");
        let lines: Vec<(usize, ErrorCode)> = problems.iter().map(|p| (p.line, p.code)).collect();
        assert_eq!(
            lines,
            vec![
                (3, ErrorCode::InvalidItemParameter),
                (4, ErrorCode::DuplicateCard),
                (5, ErrorCode::BadParameter),
                (6, ErrorCode::InvalidItemParameter)
            ]
        );
    }
}

#[cfg(test)]
mod xlsx_bounds {
    use super::*;

    fn book(cells: &[(u32, u16, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.xlsx");
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        for (r, c, v) in cells {
            ws.write_string(*r, *c, *v).unwrap();
        }
        wb.save(&p).unwrap();
        (dir, p)
    }

    /// A file of a few KB whose used range is the whole sheet is refused
    /// with a clear error, without allocating the range.
    #[test]
    fn a_huge_used_range_is_refused_not_allocated() {
        let (_d, p) = book(&[(0, 0, "89860012345678901234"), (1_048_575, 16_383, "x")]);
        assert!(std::fs::metadata(&p).unwrap().len() < 20_000);
        match read(&p) {
            Err(FileError::Parse(_, why)) => assert!(why.contains("used range"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Wide but short, and long but narrow, are refused the same way.
        let (_d, p) = book(&[(0, 0, "a"), (0, 40, "b")]);
        assert!(matches!(read(&p), Err(FileError::Parse(..))));
        let (_d, p) = book(&[(0, 0, "a"), (200_000, 0, "b")]);
        assert!(matches!(read(&p), Err(FileError::Parse(..))));
    }

    #[test]
    fn sparse_cells_become_rows_with_their_line_numbers() {
        let (_d, p) = book(&[
            (0, 0, "iccid"),
            (1, 0, "89860012345678901234"),
            (1, 2, "86"),
            (3, 0, "89860012345678901242"),
        ]);
        let rows = read(&p).unwrap();
        assert_eq!(rows.len(), 3, "header dropped, blank row 3 kept: {rows:?}");
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].cells, vec!["89860012345678901234", "", "86"]);
        assert!(rows[1].cells.iter().all(String::is_empty));
        assert_eq!(rows[2].line, 4);
    }
}
