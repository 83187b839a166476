//! How sync fails, on either side.

use crate::records::RecordsError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sync bookkeeping is corrupt: {0}")]
    Corrupt(String),
    /// A pushed change names an author the sender may not write as; nothing
    /// of the request was applied.
    #[error("record {record} holds a change by {actor}, who the sender may not write as")]
    ForgedAuthor { record: String, actor: String },
    /// A signature of the request is missing, invalid or not the sender's
    /// to present; nothing of the request was applied.
    #[error("{0}; nothing was applied")]
    Signature(String),
}
