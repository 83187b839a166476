//! The record service: creating, editing, reading and listing records on one
//! instance. It joins forms (validation), documents ([`RecordDoc`](crate::record::RecordDoc))
//! and storage ([`DocStore`](crate::store::DocStore)).
//!
//! Every write loads the document, applies the edit, and stores the change as an
//! incremental chunk (or, past a bound, a compacted snapshot) together with a
//! fresh JSON view and summary, in one durable store write. Reads and lists
//! never load documents: they serve the cached views.
//!
//! - `service`: [`Records`] itself, its forms and identity;
//! - `edit`: local writes, all by one path, naming their [`Author`];
//! - `remote`: records arriving by sync;
//! - `query`: reads, lists and the store check;
//! - `stored`: the view, summary and compaction rule every write shares;
//! - `cache`: documents kept open between writes of the same record.

mod cache;
mod edit;
mod query;
mod remote;
mod service;
mod stored;

pub use self::edit::{transition_allowed, Attachment, Author, Patch, Submission, Written};
pub use self::query::{Filter, Page, DEFAULT_LIMIT, MAX_LIMIT};
pub use self::remote::{
    change_authors, change_graph, document_changes, Payload, RemoteDoc, RemoteResult,
};
pub use self::service::{Identity, Records, RecordsError};
pub use self::stored::{build_view, plain_snapshot, RecordView, MAX_CHUNKS};
