//! Reading a posted entry form: its text parts, within a size limit, and
//! (from a page without the script) the files chosen with it, where one
//! over the attachment limit is skipped and named rather than refusing the
//! whole report.

use crate::error::ApiError;
use crate::web::entry::posted::Posted;
use actix_multipart::Multipart;
use futures_util::StreamExt;

/// A file chosen in an image field.
pub(super) struct Upload {
    pub(super) field: String,
    pub(super) name: String,
    pub(super) bytes: Vec<u8>,
}

/// Largest text part of a posted form; long findings fit many times over.
pub(super) const MAX_TEXT_PART: usize = 256 * 1024;

/// Read a posted multipart form: text parts into `Posted`, files apart.
/// A file left out of a posted form because it is too large: the report is
/// saved without it and the page says so.
pub(super) struct Oversized {
    pub(super) field: String,
    pub(super) name: String,
    pub(super) size: usize,
}

/// Files past the limit are read to their end (to reach the fields after
/// them) but not kept, up to this many times the limit in all; past that
/// the post is refused whole.
pub(super) const OVERSIZED_ALLOWANCE: usize = 8;

pub(super) async fn read_multipart(
    mut body: Multipart,
    max_text: usize,
    max_file: usize,
) -> Result<(Posted, Vec<Upload>, Vec<Oversized>), ApiError> {
    let mut posted = Posted::new();
    let mut uploads = Vec::new();
    let mut oversized = Vec::new();
    let mut skipped = 0usize;
    let mut text_total = 0usize;
    while let Some(part) = body.next().await {
        let mut part = part.map_err(|e| {
            ApiError::bad_request("bad_form", format!("The form could not be read: {e}."))
        })?;
        let name = part.name().unwrap_or_default().to_string();
        let filename = part
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_string);
        let limit = if filename.is_some() {
            max_file
        } else {
            MAX_TEXT_PART
        };
        let mut bytes = Vec::new();
        let mut size = 0usize;
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request("bad_form", format!("The form could not be read: {e}."))
            })?;
            size += chunk.len();
            if size > limit {
                // A photo too large must not cost the report: skip it.
                if filename.is_none() {
                    return Err(ApiError::too_large(limit));
                }
                skipped += chunk.len();
                if skipped > OVERSIZED_ALLOWANCE * max_file {
                    return Err(ApiError::too_large(limit));
                }
                bytes.clear();
                continue;
            }
            bytes.extend_from_slice(&chunk);
        }
        if size > limit {
            if let (Some(file), Some(field)) = (&filename, name.strip_prefix("file.")) {
                oversized.push(Oversized {
                    field: field.to_string(),
                    name: file.clone(),
                    size,
                });
            }
            continue;
        }
        match filename {
            Some(file) => {
                if let (Some(field), false) = (name.strip_prefix("file."), bytes.is_empty()) {
                    uploads.push(Upload {
                        field: field.to_string(),
                        name: file,
                        bytes,
                    });
                }
            }
            None => {
                text_total += bytes.len();
                if text_total > max_text {
                    return Err(ApiError::too_large(max_text));
                }
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::bad_request("bad_form", "The form is not valid UTF-8 text.")
                })?;
                posted.entry(name).or_default().push(text);
            }
        }
    }
    Ok((posted, uploads, oversized))
}
