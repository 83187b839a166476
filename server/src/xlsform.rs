//! Importing an XLSForm workbook as the next version of its form, for the command
//! line (`tideline form import`) and HQ's `POST /api/v1/forms/import` alike: read
//! it (tideline_schemas::xlsform), number it after the versions already known, and
//! publish it through the one form-publishing path when asked.

use tideline_schemas::xlsform::{self, ImportError};
use tideline_schemas::{Form, FormRegistry};
use tideline_sync::RecordsError;

use crate::data_dir::SharedRecords;

/// What an import came to.
#[derive(Debug)]
pub enum Imported {
    /// Read and checked, not published: what publishing would make.
    Preview(Form),
    /// Published as a new version.
    Published(Form),
    /// The latest version already is this form; nothing was published.
    Unchanged(Form),
}

impl Imported {
    pub fn form(&self) -> &Form {
        match self {
            Imported::Preview(f) | Imported::Published(f) | Imported::Unchanged(f) => f,
        }
    }
}

/// Why an import failed: the workbook, or publishing it.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error(transparent)]
    Workbook(#[from] ImportError),
    #[error(transparent)]
    Publish(#[from] RecordsError),
}

/// Reads `bytes` and publishes the form as the next version of its id: `Published`,
/// or `Unchanged` when the latest version already is this form (the same questions
/// and the same settings version), so importing it again changes nothing.
pub fn publish(records: &SharedRecords, bytes: &[u8]) -> Result<Imported, ImportFailure> {
    let imported = preview(&records.forms(), bytes)?;
    let Imported::Preview(form) = imported else {
        return Ok(imported);
    };
    let json =
        serde_json::to_string(&form).map_err(|e| RecordsError::InvalidForm(e.to_string()))?;
    let (form, new) = records.publish_form(&json)?;
    Ok(if new {
        Imported::Published(form)
    } else {
        Imported::Unchanged(form)
    })
}

/// Reads `bytes` as the next version of its form among `forms`, publishing nothing:
/// `Preview`, or `Unchanged` when it is the latest version already.
pub fn preview(forms: &FormRegistry, bytes: &[u8]) -> Result<Imported, ImportFailure> {
    let mut form = xlsform::import(bytes, 1)?;
    if let Some(latest) = forms.latest(&form.id) {
        form.version = latest.version;
        // A workbook exported from a version that had no spreadsheet version of its
        // own carries that version's number; unchanged, it is that version.
        let mut same = form.clone();
        if latest.source_version.is_none()
            && same.source_version.as_deref() == Some(latest.version.to_string().as_str())
        {
            same.source_version = None;
        }
        if *latest == same {
            return Ok(Imported::Unchanged(same));
        }
        form.version = latest.version + 1;
    }
    Ok(Imported::Preview(form))
}
