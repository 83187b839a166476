//! XLSForm import and export: the spreadsheets of ODK, KoboToolbox and Survey123 read into a
//! Tideline form. Every column and type is either honoured or refused with the sheet,
//! row and column it is in and what to do, because a form whose logic is silently
//! dropped is worse than one refused. docs/FORMS.md lists what is supported.
//!
//! Pure: the workbook arrives as bytes and leaves as a [`Form`], checked by
//! [`Form::check`] like any other, so it is refused here rather than on a boat.

mod error;
mod export;
mod sheet;
mod survey;

pub use error::ImportError;
pub use export::{export, workbook, ExportError};
pub use sheet::{MAX_ROWS, MAX_UNPACKED_BYTES, MAX_XLSX_BYTES};

use crate::form::Form;

/// Reads an XLSForm workbook into a form numbered `version` (the settings sheet's
/// own version string is kept in [`Form::source_version`]).
pub fn import(bytes: &[u8], version: u32) -> Result<Form, ImportError> {
    survey::convert(&sheet::read(bytes)?, version)
}
