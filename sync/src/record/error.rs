//! What can go wrong with a record's document.

use automerge::AutomergeError;

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("the document could not be decoded: {0}")]
    Decode(String),
    #[error("the document does not have the record layout: {0}")]
    Layout(String),
    #[error("automerge: {0}")]
    Automerge(#[from] AutomergeError),
}
