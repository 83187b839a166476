//! XLSForm import: the spreadsheets of ODK, KoboToolbox and Survey123 read into a
//! Tideline form. Every column and type is either honoured or refused with the sheet,
//! row and column it is in and what to do, because a form whose logic is silently
//! dropped is worse than one refused. docs/FORMS.md lists what is supported.
//!
//! Pure: the workbook arrives as bytes and leaves as a [`Form`], checked by
//! [`Form::check`] like any other, so it is refused here rather than on a boat.

mod sheet;
mod survey;

pub use sheet::{MAX_ROWS, MAX_UNPACKED_BYTES, MAX_XLSX_BYTES};

use crate::form::Form;

/// Why a workbook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error(
        "the file is not an .xlsx workbook ({0}); save it from your spreadsheet program as .xlsx"
    )]
    NotXlsx(String),
    #[error("the workbook is larger than {max} bytes (unpacked or not)")]
    TooLarge { max: usize },
    #[error("the {sheet} sheet has more than {max} rows")]
    TooManyRows { sheet: &'static str, max: usize },
    #[error("the workbook has no {sheet} sheet; {hint}")]
    MissingSheet {
        sheet: &'static str,
        hint: &'static str,
    },
    #[error("{sheet} sheet, row {row}, column {column}: {message}")]
    At {
        sheet: String,
        row: usize,
        column: String,
        message: String,
    },
}

/// A form read from a workbook.
#[derive(Debug, Clone)]
pub struct Imported {
    pub form: Form,
}

/// Reads an XLSForm workbook into a form numbered `version` (the settings sheet's
/// own version string is kept in [`Form::source_version`]).
pub fn import(bytes: &[u8], version: u32) -> Result<Imported, ImportError> {
    let book = sheet::read(bytes)?;
    survey::convert(&book, version).map(|form| Imported { form })
}
