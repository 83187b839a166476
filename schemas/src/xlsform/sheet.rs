//! Reading a workbook's sheets as rows of text, within limits: the archive's size and
//! what it unpacks to are checked before anything is decompressed, so a small hostile
//! file cannot make the server inflate gigabytes.

use std::io::{Cursor, Read, Seek};

use calamine::{Data, Reader, Xlsx};

use super::error::ImportError;

/// Workbooks larger than this are refused; real XLSForms are tens of kilobytes.
pub const MAX_XLSX_BYTES: usize = 16 * 1024 * 1024;
/// What the archive may unpack to, in all.
pub const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;
/// Rows read from one sheet; a form with more questions than this is not a form.
pub const MAX_ROWS: usize = 20_000;

/// One sheet: its header row and the rows under it.
#[derive(Debug, Clone)]
pub(crate) struct Sheet {
    pub(crate) name: &'static str,
    /// Header cells, trimmed, as written (language names keep their case).
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Row>,
}

/// A row under the header: its number as the spreadsheet shows it (the header is 1).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) number: usize,
    pub(crate) cells: Vec<String>,
}

impl Sheet {
    /// The column whose header is `key` (case-insensitive).
    pub(crate) fn column(&self, key: &str) -> Option<usize> {
        self.header.iter().position(|h| h.eq_ignore_ascii_case(key))
    }

    /// The spreadsheet's name for column `index`: `C (type)`.
    pub(crate) fn column_name(&self, index: usize) -> String {
        let mut letters = String::new();
        let mut n = index + 1;
        while n > 0 {
            let rem = (n - 1) % 26;
            letters.insert(0, char::from(b'A' + rem as u8));
            n = (n - 1) / 26;
        }
        let header = self.header.get(index).map_or("", String::as_str);
        format!("{letters} ({header})")
    }

    /// A refusal pointing at one cell.
    pub(crate) fn refuse(
        &self,
        row: usize,
        column: usize,
        message: impl Into<String>,
    ) -> ImportError {
        ImportError::At {
            sheet: self.name.to_string(),
            row,
            column: self.column_name(column),
            message: message.into(),
        }
    }
}

impl Row {
    pub(crate) fn get(&self, column: Option<usize>) -> &str {
        column
            .and_then(|c| self.cells.get(c))
            .map_or("", |s| s.as_str())
    }
}

/// The workbook's `survey`, `choices` and `settings` sheets (the latter two may be
/// absent), and whether it has an `entities` sheet with content, which is refused.
pub(crate) struct Workbook {
    pub(crate) survey: Sheet,
    pub(crate) choices: Option<Sheet>,
    pub(crate) settings: Option<Sheet>,
    pub(crate) entities: Option<Sheet>,
}

pub(crate) fn read(bytes: &[u8]) -> Result<Workbook, ImportError> {
    if bytes.len() > MAX_XLSX_BYTES {
        return Err(ImportError::TooLarge {
            max: MAX_XLSX_BYTES,
        });
    }
    check_unpacked_size(Cursor::new(bytes))?;
    let mut book: Xlsx<_> =
        Xlsx::new(Cursor::new(bytes)).map_err(|e| ImportError::NotXlsx(e.to_string()))?;
    let names = book.sheet_names().to_vec();
    let mut sheet = |wanted: &'static str| -> Result<Option<Sheet>, ImportError> {
        let Some(actual) = names.iter().find(|n| n.trim().eq_ignore_ascii_case(wanted)) else {
            return Ok(None);
        };
        let range = book
            .worksheet_range(actual)
            .map_err(|e| ImportError::NotXlsx(format!("the {wanted} sheet cannot be read: {e}")))?;
        rows_of(wanted, &range).map(Some)
    };
    let survey = sheet("survey")?.ok_or(ImportError::MissingSheet {
        sheet: "survey",
        hint: "an XLSForm's questions are on a sheet called survey",
    })?;
    Ok(Workbook {
        choices: sheet("choices")?,
        settings: sheet("settings")?,
        entities: sheet("entities")?,
        survey,
    })
}

/// The sum of the archive's declared entry sizes, refused over the limit. The reader
/// that inflates them stops at the declared size, so the declaration is the bound.
fn check_unpacked_size<R: Read + Seek>(reader: R) -> Result<(), ImportError> {
    let mut archive =
        zip::ZipArchive::new(reader).map_err(|e| ImportError::NotXlsx(e.to_string()))?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| ImportError::NotXlsx(e.to_string()))?;
        total = total.saturating_add(entry.size());
    }
    if total > MAX_UNPACKED_BYTES {
        return Err(ImportError::TooLarge {
            max: MAX_UNPACKED_BYTES as usize,
        });
    }
    Ok(())
}

fn rows_of(name: &'static str, range: &calamine::Range<Data>) -> Result<Sheet, ImportError> {
    // The range starts at the first used cell; rows and columns are counted from the
    // sheet's corner so that refusals name the cell a person sees.
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let (first_row, first_col) = (first_row as usize, first_col as usize);
    let mut rows = range.rows().enumerate();
    let header: Vec<String> = match rows.next() {
        Some((_, cells)) => {
            let mut h = vec![String::new(); first_col];
            h.extend(cells.iter().map(|c| text(c).trim().to_string()));
            h
        }
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for (i, cells) in rows {
        if out.len() >= MAX_ROWS {
            return Err(ImportError::TooManyRows {
                sheet: name,
                max: MAX_ROWS,
            });
        }
        let mut row = vec![String::new(); first_col];
        row.extend(cells.iter().map(|c| text(c).trim().to_string()));
        if row.iter().all(String::is_empty) {
            continue;
        }
        out.push(Row {
            number: first_row + i + 1,
            cells: row,
        });
    }
    Ok(Sheet {
        name,
        header,
        rows: out,
    })
}

/// A cell as the text a person typed: whole numbers without a fraction (a version
/// `2026112801` typed as a number), dates as ISO 8601.
fn text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => match d.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
            Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            None => d.as_f64().to_string(),
        },
        Data::Error(e) => format!("#{e:?}"),
    }
}
