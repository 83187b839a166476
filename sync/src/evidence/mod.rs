//! Signed authorship (docs/EVIDENCE.md): every change an instance authors
//! reaches its upstream under a signature of that instance's key, relays
//! pass the original signatures on, and the upstream refuses a new change
//! that no signature of its own author covers.
//!
//! - `signed`: the signed objects (batches over change hashes with the
//!   signer's audit head, enrolment certificates) and the bytes each
//!   signature covers;
//! - `cover`: which changes a set of signatures covers (pure);
//! - `kept`: where signatures and certificates are stored.

mod cover;
mod kept;
mod signed;

pub use self::cover::{nodes, tips, tips_of, unsigned, Node};
pub use self::kept::{
    batch, batch_writes, certificate, certificate_write, record_batches, signed_by,
};
pub use self::signed::{
    Attestor, AuditHead, Batch, Certificate, Enrolment, KeyAttestor, SignatureError, BATCH_DOMAIN,
    CERTIFICATE_DOMAIN,
};
