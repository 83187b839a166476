//! The sync wire format (protocol v6), see docs/SYNC.md.
//!
//! A message on the wire is `MAGIC` (4 bytes), the protocol version (u16,
//! big-endian), then one zstd frame, with its content checksum, holding the
//! postcard encoding of a [`SyncRequest`] or [`SyncResponse`]. A frame
//! without the checksum, a checksum that does not match, or bytes after the
//! frame are refused: damage on the way is a refusal, never data. Compressing the whole batch, rather than
//! each change, is what makes many small Automerge changes cheap: one change
//! alone grows when compressed, a batch of them shrinks about threefold.
//!
//! Decoding is bounded: the compressed body is limited by the HTTP layer and the
//! decompressed size by [`Limits::max_decoded`], enforced while decompressing, so
//! a small body claiming to expand to gigabytes is refused without allocating it.
//!
//! ```
//! use tideline_sync::protocol::{decode_request, encode_request, Limits, SyncRequest};
//!
//! let request = SyncRequest { instance: [7; 16], station: "BB-01".into(), ..Default::default() };
//! let bytes = encode_request(&request).unwrap();
//! assert_eq!(&bytes[..4], b"TDLS");
//! assert_eq!(decode_request(&bytes, &Limits::default()).unwrap(), request);
//! ```

use crate::evidence::{AuditHead, Batch, Certificate};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::Read;

pub const MAGIC: [u8; 4] = *b"TDLS";
pub const PROTOCOL_VERSION: u16 = 6;
/// The media type of a sync exchange's body, both ways.
pub const CONTENT_TYPE: &str = "application/vnd.tideline.sync.v1";
const HEADER_LEN: usize = 6;
/// zstd level 3: most of the gain at a fraction of the CPU of higher levels,
/// which matters on a boat laptop.
const ZSTD_LEVEL: i32 = 3;

/// One record's part of a message: either the Automerge changes the
/// receiver lacks, in their raw (uncompressed) encoding and an order where
/// each change's dependencies come before it, or — for a record the
/// receiver has none of — the whole document as the sender stores it.
///
/// A whole document costs about 14% more bytes than its changes once the
/// message is compressed, and a quarter of the CPU on each side: the sender
/// sends its stored bytes without loading them, and the receiver loads one
/// document (verifying every hash) instead of applying changes one by one,
/// then stores the bytes it received (docs/PERFORMANCE.md). Only plain
/// documents travel: no DEFLATE-compressed column, appended changes
/// uncompressed ([`crate::integrity::plain_document`]).
///
/// Record ids travel as their hyphenated text, not 16 raw bytes: a record's first
/// change holds the same text in its `meta.id`, and zstd then stores the second
/// occurrence as a short back-reference. Measured on 1,000 boarding reports this
/// saves a fifth of the first sync's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocChanges {
    pub id: String,
    pub changes: Vec<Vec<u8>>,
    /// The whole document instead of changes; empty when `changes` carry the record.
    pub document: Vec<u8>,
}

/// A message of Automerge's own sync protocol for one record, used for records
/// whose heads show missing dependencies on one side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocSyncMessage {
    pub id: String,
    pub message: Vec<u8>,
}

/// Downstream → upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The sending instance's device id; the upstream checks it against the
    /// credential the request is authenticated with.
    pub instance: [u8; 16],
    /// The sender's station: what it may pull.
    pub station: String,
    /// The upstream epoch this downstream last synced with, if any.
    pub epoch: Option<[u8; 16]>,
    /// The upstream seq up to which this downstream has received everything.
    pub pull_since: u64,
    /// Upper bound on the change bytes the upstream should return in this page.
    pub max_pull_bytes: u64,
    pub push: Vec<DocChanges>,
    pub fallback: Vec<DocSyncMessage>,
    /// The sender's ed25519 signature (docs/EVIDENCE.md) over the tips of
    /// every pushed record's changes, the `signed_heads` and `audit`: the
    /// receiver computes the tips from what it received, so they do not
    /// travel.
    pub signature: Vec<u8>,
    /// Heads signed besides the pushed tips: those of records under repair,
    /// whose changes travel inside `fallback`.
    pub signed_heads: Vec<[u8; 32]>,
    /// The sender's audit head, anchored at the receiver by the signature.
    pub audit: AuditHead,
    /// The first 16 bytes of the hash the sender's audit entry holds now at
    /// the seq of the last anchor the receiver acknowledged, so the
    /// receiver can tell whether the chain was rewritten below it.
    pub audit_check: Option<(u64, [u8; 16])>,
    /// Batches of other authors whose changes are pushed (a station's
    /// boats), as they signed them, each sent once.
    pub relayed: Vec<Batch>,
    /// Enrolment certificates of the relayed batches' signers, signed by
    /// the sender, each sent once.
    pub certificates: Vec<Certificate>,
    /// Every (form, version) the sender has, so the upstream can send the
    /// versions it lacks.
    pub forms: Vec<(String, u32)>,
}

/// Why the upstream did not apply a pushed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The changes depend on changes the upstream does not have: repair the
    /// record with Automerge's sync protocol.
    MissingDeps,
    /// The changes could not be decoded or do not form a record.
    Invalid,
    /// The sender may not write this record.
    Forbidden,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub id: String,
    pub reason: Rejection,
}

/// Upstream → downstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The upstream's device id.
    pub instance: [u8; 16],
    /// Identifies the upstream's store; a change means the downstream must not
    /// trust its checkpoints and starts over.
    pub epoch: [u8; 16],
    /// The request's checkpoint does not belong to this store (restored from an
    /// older backup, or a different upstream): discard checkpoints and resend.
    pub reset: bool,
    /// Pushed records that were not applied; every other pushed record was
    /// applied and is durable.
    pub rejected: Vec<Rejected>,
    /// Records changed upstream since `pull_since`, as the changes the
    /// downstream lacks.
    pub pull: Vec<DocChanges>,
    /// The checkpoint to send as `pull_since` next time.
    pub pull_seq: u64,
    /// More pull pages wait.
    pub more: bool,
    pub fallback: Vec<DocSyncMessage>,
    /// Form versions the downstream lacks (their JSON definitions): forms
    /// published upstream reach every boat this way.
    pub forms: Vec<String>,
}

/// Bounds on decoding peer data.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest decompressed message accepted.
    pub max_decoded: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decoded: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("not a Tideline sync message")]
    BadMagic,
    #[error(
        "sync protocol version {0} is not supported (this instance speaks {PROTOCOL_VERSION})"
    )]
    Version(u16),
    #[error("the message expands past the limit of {0} bytes")]
    TooLarge(usize),
    #[error("the message is corrupt: {0}")]
    Corrupt(String),
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let plain = postcard::to_stdvec(msg).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() / 2);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    let corrupt = |e: std::io::Error| CodecError::Corrupt(e.to_string());
    let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(corrupt)?;
    compressor
        .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
        .map_err(corrupt)?;
    out.extend_from_slice(&compressor.compress(&plain).map_err(corrupt)?);
    Ok(out)
}

/// The zstd magic number, little-endian on the wire.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Bit of the frame header descriptor that says a content checksum follows
/// the frame (RFC 8878, 3.1.1.1.1).
const CHECKSUM_FLAG: u8 = 0x04;

/// Exactly one zstd frame, and one that carries its content checksum (which
/// the decoder then verifies): a bit flipped anywhere is caught here or by
/// the checksum, instead of decoding into different but plausible data.
fn check_frame(frame: &[u8]) -> Result<(), CodecError> {
    if frame.len() < 5 || frame[..4] != ZSTD_MAGIC {
        return Err(CodecError::Corrupt("not a zstd frame".into()));
    }
    if frame[4] & CHECKSUM_FLAG == 0 {
        return Err(CodecError::Corrupt("the frame carries no checksum".into()));
    }
    match zstd::zstd_safe::find_frame_compressed_size(frame) {
        Ok(n) if n == frame.len() => Ok(()),
        Ok(_) => Err(CodecError::Corrupt("bytes after the frame".into())),
        Err(_) => Err(CodecError::Corrupt(
            "the frame is cut short or damaged".into(),
        )),
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], limits: &Limits) -> Result<T, CodecError> {
    if bytes.len() < HEADER_LEN || bytes[..4] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != PROTOCOL_VERSION {
        return Err(CodecError::Version(version));
    }
    let frame = &bytes[HEADER_LEN..];
    check_frame(frame)?;
    let decoder =
        zstd::stream::read::Decoder::new(frame).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    let mut plain = Vec::new();
    // Read one byte past the limit to tell "exactly at the limit" from "over it"
    // without ever holding more than that.
    decoder
        .take(limits.max_decoded as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if plain.len() > limits.max_decoded {
        return Err(CodecError::TooLarge(limits.max_decoded));
    }
    let (msg, rest) =
        postcard::take_from_bytes(&plain).map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Corrupt("trailing bytes".into()));
    }
    Ok(msg)
}

pub fn encode_request(msg: &SyncRequest) -> Result<Vec<u8>, CodecError> {
    encode(msg)
}

pub fn decode_request(bytes: &[u8], limits: &Limits) -> Result<SyncRequest, CodecError> {
    decode(bytes, limits)
}

pub fn encode_response(msg: &SyncResponse) -> Result<Vec<u8>, CodecError> {
    encode(msg)
}

pub fn decode_response(bytes: &[u8], limits: &Limits) -> Result<SyncResponse, CodecError> {
    decode(bytes, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc_changes() -> impl Strategy<Value = DocChanges> {
        (
            "[0-9a-f-]{36}",
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..4),
        )
            .prop_map(|(id, changes)| {
                // Every other record a whole document, as a first sync sends them.
                let document = changes.concat();
                if id.as_bytes()[0] % 2 == 0 {
                    DocChanges {
                        id,
                        changes,
                        document: Vec::new(),
                    }
                } else {
                    DocChanges {
                        id,
                        changes: Vec::new(),
                        document,
                    }
                }
            })
    }

    fn request() -> impl Strategy<Value = SyncRequest> {
        (
            any::<[u8; 16]>(),
            "[A-Z0-9-]{1,12}",
            proptest::option::of(any::<[u8; 16]>()),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(doc_changes(), 0..8),
            (
                any::<[u8; 32]>(),
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..70),
            ),
        )
            .prop_map(
                |(
                    instance,
                    station,
                    epoch,
                    pull_since,
                    max_pull_bytes,
                    push,
                    (hash, seq, signature),
                )| SyncRequest {
                    instance,
                    station,
                    epoch,
                    pull_since,
                    max_pull_bytes,
                    push,
                    fallback: vec![],
                    signature: signature.clone(),
                    signed_heads: vec![hash],
                    audit: AuditHead { seq, hash },
                    audit_check: Some((seq / 2, [3; 16])),
                    relayed: vec![Batch {
                        signer: instance,
                        audit: AuditHead { seq, hash },
                        tips: vec![hash],
                        signature,
                    }],
                    certificates: vec![],
                    forms: vec![("boarding-report".into(), 2)],
                },
            )
    }

    fn response() -> impl Strategy<Value = SyncResponse> {
        (
            any::<[u8; 16]>(),
            any::<bool>(),
            proptest::collection::vec(("[0-9a-f-]{36}", 0u8..3), 0..4),
            proptest::collection::vec(doc_changes(), 0..8),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(
                |(epoch, reset, rejected, pull, pull_seq, more)| SyncResponse {
                    instance: epoch,
                    epoch,
                    reset,
                    rejected: rejected
                        .into_iter()
                        .map(|(id, r)| Rejected {
                            id,
                            reason: [
                                Rejection::MissingDeps,
                                Rejection::Invalid,
                                Rejection::Forbidden,
                            ][r as usize],
                        })
                        .collect(),
                    pull,
                    pull_seq,
                    more,
                    fallback: vec![DocSyncMessage {
                        id: "01900000-0000-7000-8000-000000000000".into(),
                        message: vec![1, 2, 3],
                    }],
                    forms: vec![r#"{"id":"x","version":1}"#.into()],
                },
            )
    }

    proptest! {
        #[test]
        fn requests_round_trip(msg in request()) {
            let bytes = encode_request(&msg).unwrap();
            prop_assert_eq!(decode_request(&bytes, &Limits::default()).unwrap(), msg);
        }

        #[test]
        fn responses_round_trip(msg in response()) {
            let bytes = encode_response(&msg).unwrap();
            prop_assert_eq!(decode_response(&bytes, &Limits::default()).unwrap(), msg);
        }

        /// Truncated or bit-flipped messages are errors, never panics, and
        /// never a different message.
        #[test]
        fn damaged_messages_are_errors(msg in request(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let bytes = encode_request(&msg).unwrap();
            let cut_at = cut.index(bytes.len());
            prop_assert!(decode_request(&bytes[..cut_at], &Limits::default()).is_err());
            let mut flipped = bytes.clone();
            let i = flip.index(flipped.len());
            flipped[i] ^= 1 << bit;
            match decode_request(&flipped, &Limits::default()) {
                Err(_) => {}
                // A flip in a frame header field that does not change the
                // content (the window size, say) may decode: to the same message.
                Ok(decoded) => prop_assert_eq!(decoded, msg, "byte {} bit {} decoded to another message", i, bit),
            }
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused_without_expanding_it() {
        // 1 GiB of zeros compresses to about 40 KiB; build it in streaming
        // fashion so the test itself does not hold a gigabyte either.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        encoder.include_checksum(true).unwrap();
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..1024 {
            std::io::Write::write_all(&mut encoder, &zeros).unwrap();
        }
        let compressed = encoder.finish().unwrap();
        let mut bomb = MAGIC.to_vec();
        bomb.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        bomb.extend_from_slice(&compressed);
        let limits = Limits {
            max_decoded: 1024 * 1024,
        };
        assert_eq!(
            decode_request(&bomb, &limits),
            Err(CodecError::TooLarge(1024 * 1024))
        );
    }

    #[test]
    fn frames_without_a_checksum_or_with_bytes_after_them_are_refused() {
        let plain = postcard::to_stdvec(&SyncRequest::default()).unwrap();
        let mut unchecked = MAGIC.to_vec();
        unchecked.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        unchecked.extend_from_slice(&zstd::bulk::compress(&plain, 3).unwrap());
        assert_eq!(
            decode_request(&unchecked, &Limits::default()),
            Err(CodecError::Corrupt("the frame carries no checksum".into()))
        );
        let mut trailing = encode_request(&SyncRequest::default()).unwrap();
        let again = trailing[HEADER_LEN..].to_vec();
        trailing.extend_from_slice(&again);
        assert_eq!(
            decode_request(&trailing, &Limits::default()),
            Err(CodecError::Corrupt("bytes after the frame".into()))
        );
    }

    #[test]
    fn a_peer_on_the_previous_version_is_told_both_versions() {
        let mut previous = encode_request(&SyncRequest::default()).unwrap();
        previous[4..6].copy_from_slice(&(PROTOCOL_VERSION - 1).to_be_bytes());
        let refused = decode_request(&previous, &Limits::default()).unwrap_err();
        assert_eq!(refused, CodecError::Version(5));
        assert_eq!(
            refused.to_string(),
            "sync protocol version 5 is not supported (this instance speaks 6)"
        );
    }

    #[test]
    fn wrong_magic_and_version_are_named() {
        assert_eq!(
            decode_request(b"GET / HTTP/1.1", &Limits::default()),
            Err(CodecError::BadMagic)
        );
        let mut future = encode_request(&SyncRequest::default()).unwrap();
        future[5] = 9;
        assert_eq!(
            decode_request(&future, &Limits::default()),
            Err(CodecError::Version(9))
        );
    }
}
