//! Is a received Automerge chunk the one its author wrote? Every chunk
//! (a change, or a document in Automerge's sync messages) starts with the
//! first four bytes of the SHA-256 of its contents, but Automerge 0.12 does
//! not compare them when it loads a change, so damage that still decodes
//! would be merged as whatever it decodes to: a copy of a record under a new
//! id, say. Peer data passes through here before it is applied.
//!
//! The layout checked (Automerge's binary format, "chunk container"):
//! `85 6f 4a 83` magic, 4-byte checksum, 1-byte type, LEB128 length, data;
//! the checksum is SHA-256 over the type, the minimally encoded length and
//! the data. Chunks may be concatenated.
//!
//! ```
//! use automerge::{transaction::Transactable, AutoCommit, ROOT};
//! use tideline_sync::integrity::chunks_intact;
//!
//! let mut doc = AutoCommit::new();
//! doc.put(ROOT, "vessel", "Sea Breeze").unwrap();
//! let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
//! assert!(chunks_intact(&change));
//! let mut damaged = change.clone();
//! *damaged.last_mut().unwrap() ^= 0x10;
//! assert!(!chunks_intact(&damaged));
//! ```

use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk types whose checksum covers their bytes as they are: documents and
/// changes. A compressed change (type 2) is checked against its inflated
/// form, which would mean inflating peer data without a bound; no Tideline
/// peer sends one, so it is refused.
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;

/// An unsigned LEB128 number at the start of `bytes`, and its length.
fn leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn leb128_bytes(mut value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// True when `bytes` is one or more whole chunks of known type, each with a
/// checksum matching its contents. Empty input is not a chunk.
pub fn chunks_intact(mut bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return false;
        }
        let checksum = &bytes[4..8];
        let kind = bytes[8];
        if kind != DOCUMENT && kind != CHANGE {
            return false;
        }
        let Some((len, len_bytes)) = leb128(&bytes[9..]) else {
            return false;
        };
        let start = 9 + len_bytes;
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .filter(|end| *end <= bytes.len())
        else {
            return false;
        };
        let mut hasher = Sha256::new();
        hasher.update([kind]);
        hasher.update(leb128_bytes(len));
        hasher.update(&bytes[start..end]);
        if hasher.finalize()[..4] != *checksum {
            return false;
        }
        bytes = &bytes[end..];
    }
    true
}

/// The checksum a single change chunk claims, if `bytes` starts like one
/// (the magic, then type 1: an uncompressed change). Automerge computes the
/// change's hash when it decodes it; comparing the two costs nothing more,
/// where [`chunks_intact`] would hash the change a second time.
pub fn claimed_change_checksum(bytes: &[u8]) -> Option<[u8; 4]> {
    if bytes.len() < 9 || bytes[..4] != MAGIC || bytes[8] != CHANGE {
        return None;
    }
    bytes[4..8].try_into().ok()
}

/// True when every chunk an Automerge sync message carries is intact (a
/// message that does not decode is left to the caller to refuse).
pub fn sync_message_intact(message: &[u8]) -> bool {
    match automerge::sync::Message::decode(message) {
        Ok(m) => m.changes.iter().all(chunks_intact),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{transaction::Transactable, AutoCommit, ROOT};

    fn some_changes() -> (Vec<u8>, Vec<u8>) {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap();
        let first = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
        doc.put(ROOT, "b", "two").unwrap();
        let second = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
        (first, second)
    }

    #[test]
    fn whole_changes_documents_and_concatenations_are_intact() {
        let (first, second) = some_changes();
        assert!(chunks_intact(&first));
        assert!(chunks_intact(&[first.clone(), second].concat()));
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "x", "y").unwrap();
        assert!(chunks_intact(&doc.save_nocompress()));
        assert!(chunks_intact(&doc.save()));
    }

    #[test]
    fn any_flipped_bit_or_missing_byte_is_caught() {
        let (first, _) = some_changes();
        for i in 0..first.len() {
            for bit in 0..8 {
                let mut damaged = first.clone();
                damaged[i] ^= 1 << bit;
                assert!(!chunks_intact(&damaged), "byte {i} bit {bit}");
            }
            assert!(!chunks_intact(&first[..i]), "cut at {i}");
        }
        assert!(!chunks_intact(&[first.clone(), vec![0]].concat()));
    }

    #[test]
    fn leb128_round_trips() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            assert_eq!(leb128(&leb128_bytes(v)), Some((v, leb128_bytes(v).len())));
        }
        assert_eq!(leb128(&[0x80; 11]), None);
    }
}
