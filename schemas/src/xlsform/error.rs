//! Why a workbook was refused: kept apart from the readers so that they and the
//! module above them do not import each other.

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
