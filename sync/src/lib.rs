//! Tideline's record layer: record documents (Automerge), their storage behind
//! the [`store::DocStore`] trait, the change feed, and the record service used by
//! the server and the CLI.
//!
//! Nothing here knows HTTP; everything here is usable offline on a boat.

#![forbid(unsafe_code)]

pub mod blobs;
pub mod engine;
pub mod evidence;
pub mod feed;
pub mod integrity;
pub mod plan;
pub mod protocol;
pub mod record;
pub mod records;
pub mod store;

pub use automerge::{ActorId, ChangeHash};
pub use record::{RecordDoc, RecordMeta, Status};
pub use records::{
    Author, Filter, Identity, Page, Patch, RecordView, Records, RecordsError, Written,
};
pub use store::{DocStore, MemoryStore, SledStore, StoreError};
