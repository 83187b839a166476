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
        match checked_chunk(bytes) {
            Some((DOCUMENT | CHANGE, _, end)) => bytes = &bytes[end..],
            _ => return false,
        }
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

/// What a whole document received from a peer says about itself, read
/// from its bytes without loading it: who authored its changes and the
/// change graph's tips it brings (the document chunk's heads, then each
/// appended change with its dependencies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainDocument {
    /// Every actor in the document chunk's table, and the author of each
    /// appended change: any of them may have authored a change in it.
    pub actors: Vec<Vec<u8>>,
    /// (hash, dependencies): the document's heads (their dependencies are
    /// inside it) and each appended change.
    pub graph: Vec<([u8; 32], Vec<[u8; 32]>)>,
}

impl PlainDocument {
    /// [`Self::actors`] as Automerge actor ids.
    pub fn authors(&self) -> Vec<automerge::ActorId> {
        self.actors
            .iter()
            .map(|a| automerge::ActorId::from(a.as_slice()))
            .collect()
    }

    /// [`Self::graph`] as Automerge change hashes.
    pub fn change_graph(&self) -> Vec<(automerge::ChangeHash, Vec<automerge::ChangeHash>)> {
        let hash = |h: &[u8; 32]| automerge::ChangeHash(*h);
        self.graph
            .iter()
            .map(|(h, deps)| (hash(h), deps.iter().map(hash).collect()))
            .collect()
    }
}

/// One chunk at the start of `bytes`: (type, data, whole chunk length),
/// after checking its checksum.
fn checked_chunk(bytes: &[u8]) -> Option<(u8, &[u8], usize)> {
    if bytes.len() < 9 || bytes[..4] != MAGIC {
        return None;
    }
    let kind = bytes[8];
    let (len, len_bytes) = leb128(&bytes[9..])?;
    let start = 9 + len_bytes;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let data = bytes.get(start..end)?;
    let mut hasher = Sha256::new();
    hasher.update([kind]);
    hasher.update(leb128_bytes(len));
    hasher.update(data);
    (hasher.finalize()[..4] == bytes[4..8]).then_some((kind, data, end))
}

/// A cursor over a chunk's data, for the few header fields read here.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn uleb(&mut self) -> Option<u64> {
        let (v, n) = leb128(self.0)?;
        self.0 = &self.0[n..];
        Some(v)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    /// A count of items each at least `min` bytes long: a count the rest
    /// could not hold is damage, refused before anything is allocated for it.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.uleb()?).ok()?;
        (n.checked_mul(min)? <= self.0.len()).then_some(n)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.uleb()?).ok()?;
        self.take(n)
    }

    fn hashes(&mut self) -> Option<Vec<[u8; 32]>> {
        let n = self.count(32)?;
        (0..n)
            .map(|_| self.take(32).and_then(|h| h.try_into().ok()))
            .collect()
    }

    /// Column metadata: (spec, length) pairs; None when any column is
    /// DEFLATE-compressed (bit 3 of the spec).
    fn plain_columns(&mut self) -> Option<()> {
        let n = self.count(2)?;
        for _ in 0..n {
            let spec = self.uleb()?;
            self.uleb()?;
            if spec & 0b1000 != 0 {
                return None;
            }
        }
        Some(())
    }
}

/// Whether `bytes` is a whole document as Tideline stores and sends it:
/// one document chunk with no DEFLATE-compressed column, then any number of
/// plain change chunks, every checksum matching. A compressed column would
/// be inflated without a bound when loaded, so it is refused like a
/// compressed change. The hashes themselves are checked by Automerge when
/// it loads the document; this reads only what must be known before that.
pub fn plain_document(bytes: &[u8]) -> Option<PlainDocument> {
    let (kind, data, mut at) = checked_chunk(bytes)?;
    if kind != DOCUMENT {
        return None;
    }
    let mut f = Fields(data);
    let mut actors = (0..f.count(1)?)
        .map(|_| f.bytes().map(<[u8]>::to_vec))
        .collect::<Option<Vec<_>>>()?;
    let mut graph: Vec<_> = f.hashes()?.into_iter().map(|h| (h, Vec::new())).collect();
    f.plain_columns()?;
    f.plain_columns()?;
    while at < bytes.len() {
        let (kind, data, len) = checked_chunk(&bytes[at..])?;
        if kind != CHANGE {
            return None;
        }
        let mut c = Fields(data);
        let deps = c.hashes()?;
        let actor = c.bytes()?.to_vec();
        if !actors.contains(&actor) {
            actors.push(actor);
        }
        let mut hasher = Sha256::new();
        hasher.update(&bytes[at + 8..at + len]);
        graph.push((hasher.finalize().into(), deps));
        at += len;
    }
    Some(PlainDocument { actors, graph })
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
    fn plain_documents_are_read_and_compressed_ones_refused() {
        let mut doc = AutoCommit::new().with_actor(automerge::ActorId::from([1u8; 16]));
        doc.put(ROOT, "findings", "x".repeat(2000)).unwrap();
        let heads = doc.get_heads();
        let plain = doc.save_nocompress();
        let read = plain_document(&plain).unwrap();
        assert_eq!(read.actors, vec![vec![1u8; 16]]);
        assert_eq!(read.graph, vec![(heads[0].0, vec![])]);
        // DEFLATEd columns (Automerge's default save of a large document).
        assert!(plain_document(&doc.save()).is_none());
        // A change appended by another actor: its author and dependencies count.
        let mut other = doc.fork().with_actor(automerge::ActorId::from([2u8; 16]));
        other.put(ROOT, "b", 2).unwrap();
        let change = other.get_last_local_change().unwrap().clone();
        let appended = [plain.clone(), change.raw_bytes().to_vec()].concat();
        let read = plain_document(&appended).unwrap();
        assert_eq!(read.actors, vec![vec![1u8; 16], vec![2u8; 16]]);
        assert_eq!(read.graph[1], (change.hash().0, vec![heads[0].0]));
        // A change alone, damage, a cut and trailing bytes are not documents.
        assert!(plain_document(change.raw_bytes()).is_none());
        for i in [0, 8, plain.len() / 2, plain.len() - 1] {
            let mut damaged = plain.clone();
            damaged[i] ^= 0x04;
            assert!(plain_document(&damaged).is_none(), "flip at {i}");
            assert!(plain_document(&plain[..i]).is_none(), "cut at {i}");
        }
        assert!(plain_document(&[plain, vec![0]].concat()).is_none());
    }

    #[test]
    fn leb128_round_trips() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            assert_eq!(leb128(&leb128_bytes(v)), Some((v, leb128_bytes(v).len())));
        }
        assert_eq!(leb128(&[0x80; 11]), None);
    }
}
