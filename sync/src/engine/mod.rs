//! The sync engine: both ends of one exchange of the sync protocol (protocol
//! v6, docs/SYNC.md), over a [`Records`](crate::records::Records) service and
//! without any network code. The server moves the bytes; tests call these
//! functions directly.
//!
//! - [`Downstream`] (a boat, or a station towards HQ): `prepare` builds a
//!   request from the local change feed, `absorb` stores the response;
//! - [`Upstream`]: `handle` applies a request and answers it;
//! - `ledger`: the bookkeeping both keep in the store's state space, each
//!   exchange committing its share of it once;
//! - `transfer`: what one side sends of a record, and the checks on what
//!   arrives; `repairs`: the downstream's repairs with Automerge's own sync
//!   protocol; `signatures`: how a request is signed and how the upstream
//!   checks its signatures (docs/EVIDENCE.md).
//!
//! What to send and how much goes in a page is decided in [`crate::plan`].

mod downstream;
mod error;
mod ledger;
mod repairs;
mod signatures;
mod transfer;
mod upstream;

pub use self::downstream::{acknowledged_anchors, Downstream, Exchange, Pending};
pub use self::error::SyncError;
pub use self::ledger::Checkpoint;
pub use self::signatures::{sign_request, Peer};
pub use self::upstream::Upstream;
pub use crate::plan::{DEFAULT_PAGE_BYTES, MAX_PAGE_BYTES};
