//! Who is acting, and what they may do (docs/DESIGN.md §7, docs/SECURITY.md):
//! the instance's own key pair, people's accounts, and the hash-chained audit
//! log every security-relevant action leaves an entry in.

pub mod attest;
pub mod audit;
pub mod devices;
pub mod identity;
pub mod phones;
pub mod sessions;
pub mod stations;
pub mod users;

pub use audit::{AuditLog, Event};
pub use identity::InstanceKey;
pub use users::{Role, User, Username};
