//! Talking to the upstream, one module per concern: an exchange of records
//! (`exchange`), the files that follow them (`files`), a whole sync run and
//! recorded (`status`), the background loop (`agent`), enrolment
//! (`enroll`), and what a failure means (`failure`), over one HTTP client
//! (`http`).
//!
//! An exchange runs on a blocking thread with a blocking HTTP client: the sync
//! engine is synchronous (it fsyncs), and keeping the whole loop on one thread
//! keeps repair state simple.

mod agent;
mod enroll;
mod exchange;
mod failure;
mod files;
mod http;
mod status;

pub use agent::{backoff, LoopTiming, SyncAgent};
pub use enroll::{enroll, EnrollError};
pub use exchange::sync_once;
pub use failure::{Outcome, SyncFailure};
pub use files::{FileFetch, FILE_CHUNK};
pub use http::{http_client, load_ca};
pub use status::{load_record, status_json, sync_and_record, SyncRecord};
