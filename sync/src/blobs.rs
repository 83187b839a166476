//! Attachments (photos, documents) stored by their SHA-256 beside the records
//! (docs/DESIGN.md §8), in `<data dir>/attachments/`.
//!
//! A blob is only ever visible complete and verified: bytes arrive in a
//! partial file (`partial/<hash>`), appended at the offset the store says it
//! holds, and become `<hash[..2]>/<hash>` by a rename once their SHA-256
//! matches, after an fsync of the file and of both directories. So an upload
//! cut anywhere resumes from what is on disk, and a reader never sees half a
//! photo. The same file stored twice is stored once.
//!
//! ```
//! use tideline_sync::blobs::{BlobHash, BlobStore};
//! let dir = tempfile::tempdir().unwrap();
//! let store = BlobStore::open(dir.path()).unwrap();
//! let photo = b"\xff\xd8\xff not really a jpeg";
//! let hash = BlobHash::of(photo);
//! // A cut upload: the first half arrives, the link drops, the rest follows.
//! assert_eq!(store.append(&hash, 0, &photo[..10]).unwrap(), 10);
//! let held = store.partial_len(&hash).unwrap();
//! store.append(&hash, held, &photo[10..]).unwrap();
//! store.finish(&hash).unwrap();
//! assert_eq!(std::fs::read(store.path(&hash).unwrap()).unwrap(), photo);
//! ```

use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A blob's SHA-256, parsed from 64 lowercase hex characters at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

impl serde::Serialize for BlobHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Read back as written: 64 lowercase hex characters, checked.
impl<'de> serde::Deserialize<'de> for BlobHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<[u8; 32]> for BlobHash {
    fn from(bytes: [u8; 32]) -> Self {
        BlobHash(bytes)
    }
}

impl BlobHash {
    pub fn of(bytes: &[u8]) -> BlobHash {
        BlobHash(Sha256::digest(bytes).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a SHA-256 (64 lowercase hexadecimal characters)")]
pub struct BadHash(pub String);

impl FromStr for BlobHash {
    type Err = BadHash;
    fn from_str(s: &str) -> Result<Self, BadHash> {
        let bad = || BadHash(s.chars().take(80).collect());
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(BlobHash(out))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("attachment storage failed: {0}")]
    Io(String),
    /// An append that does not start where the held bytes end; `held` says
    /// where to resume.
    #[error("the upload continues at byte {held}, not {offset}")]
    Offset { offset: u64, held: u64 },
    /// The bytes received do not hash to the name they were sent under; they
    /// were discarded.
    #[error("the uploaded bytes do not match SHA-256 {0}; they were discarded")]
    Mismatch(BlobHash),
    #[error("the upload would be larger than the limit of {0} bytes")]
    TooLarge(u64),
}

fn io(e: io::Error) -> BlobError {
    BlobError::Io(e.to_string())
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Content-addressed, verified, resumable storage of attachment files.
pub struct BlobStore {
    root: PathBuf,
    partial: PathBuf,
}

impl BlobStore {
    /// The store in `data_dir/attachments`, created if needed.
    pub fn open(data_dir: &Path) -> Result<BlobStore, BlobError> {
        let root = data_dir.join("attachments");
        let partial = root.join("partial");
        fs::create_dir_all(&partial).map_err(io)?;
        Ok(BlobStore { root, partial })
    }

    fn final_path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    fn partial_path(&self, hash: &BlobHash) -> PathBuf {
        self.partial.join(hash.to_hex())
    }

    /// Where a complete blob is, if it is here.
    pub fn path(&self, hash: &BlobHash) -> Option<PathBuf> {
        let p = self.final_path(hash);
        p.is_file().then_some(p)
    }

    pub fn has(&self, hash: &BlobHash) -> bool {
        self.path(hash).is_some()
    }

    /// Bytes held of an upload in progress (0 when none; the full size when
    /// the blob is already complete).
    pub fn partial_len(&self, hash: &BlobHash) -> Result<u64, BlobError> {
        if let Some(p) = self.path(hash) {
            return fs::metadata(p).map(|m| m.len()).map_err(io);
        }
        match fs::metadata(self.partial_path(hash)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(e)),
        }
    }

    /// Append `bytes` at `offset` to the upload of `hash`, durably; returns
    /// the bytes now held. An offset other than the bytes held is refused
    /// (with where to resume), so a resent chunk is never written twice.
    pub fn append(&self, hash: &BlobHash, offset: u64, bytes: &[u8]) -> Result<u64, BlobError> {
        if self.has(hash) {
            return self.partial_len(hash);
        }
        let held = self.partial_len(hash)?;
        if offset != held {
            return Err(BlobError::Offset { offset, held });
        }
        let path = self.partial_path(hash);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_data().map_err(io)?;
        if held == 0 {
            sync_dir(&self.partial)?;
        }
        Ok(held + bytes.len() as u64)
    }

    /// Check the upload of `hash` against its name and make it a blob.
    pub fn finish(&self, hash: &BlobHash) -> Result<u64, BlobError> {
        if let Some(p) = self.path(hash) {
            return fs::metadata(p).map(|m| m.len()).map_err(io);
        }
        let path = self.partial_path(hash);
        let mut hasher = Sha256::new();
        let mut file = File::open(&path).map_err(io)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        if BlobHash(hasher.finalize().into()) != *hash {
            fs::remove_file(&path).map_err(io)?;
            return Err(BlobError::Mismatch(*hash));
        }
        let target = self.final_path(hash);
        let shard = target.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&shard).map_err(io)?;
        fs::rename(&path, &target).map_err(io)?;
        sync_dir(&shard)?;
        sync_dir(&self.partial)?;
        sync_dir(&self.root)?;
        Ok(size)
    }

    /// Every complete file under the store, by path, in shard order (the
    /// names are meant to be SHA-256s; callers decide what to do with others).
    pub fn complete_files(&self) -> Result<Vec<PathBuf>, BlobError> {
        let mut files = Vec::new();
        for shard in fs::read_dir(&self.root).map_err(io)? {
            let shard = shard.map_err(io)?.path();
            if !shard.is_dir() || shard == self.partial {
                continue;
            }
            for f in fs::read_dir(&shard).map_err(io)? {
                files.push(f.map_err(io)?.path());
            }
        }
        files.sort();
        Ok(files)
    }

    /// Check every complete file against the SHA-256 it is stored under.
    /// Returns how many were checked and one sentence per problem.
    pub fn verify(&self) -> Result<(usize, Vec<String>), BlobError> {
        let mut checked = 0;
        let mut problems = Vec::new();
        for path in self.complete_files()? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Ok(hash) = name.parse::<BlobHash>() else {
                problems.push(format!("{}: not an attachment file", path.display()));
                continue;
            };
            checked += 1;
            let mut hasher = Sha256::new();
            let mut file = File::open(&path).map_err(io)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = file.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            if BlobHash(hasher.finalize().into()) != hash {
                problems.push(format!(
                    "attachment {hash}: its content does not match its SHA-256"
                ));
            }
        }
        Ok((checked, problems))
    }

    /// Remove files no record references and nobody has touched since
    /// `before`: complete blobs and unfinished uploads alike. A referenced
    /// file is never removed, whatever its age. With `dry_run`, only report.
    /// Returns what was (or would be) removed: hash, bytes, and whether it
    /// was a complete blob.
    pub fn collect(
        &self,
        referenced: &std::collections::HashSet<BlobHash>,
        before: std::time::SystemTime,
        dry_run: bool,
    ) -> Result<Vec<(BlobHash, u64, bool)>, BlobError> {
        let mut candidates: Vec<(PathBuf, bool)> = self
            .complete_files()?
            .into_iter()
            .map(|p| (p, true))
            .collect();
        for f in fs::read_dir(&self.partial).map_err(io)? {
            candidates.push((f.map_err(io)?.path(), false));
        }
        let mut removed = Vec::new();
        for (path, complete) in candidates {
            // Anything not named by a hash is not ours to judge.
            let Some(hash) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<BlobHash>().ok())
            else {
                continue;
            };
            if referenced.contains(&hash) {
                continue;
            }
            let meta = fs::metadata(&path).map_err(io)?;
            if meta.modified().map_err(io)? >= before {
                continue;
            }
            if !dry_run {
                fs::remove_file(&path).map_err(io)?;
            }
            removed.push((hash, meta.len(), complete));
        }
        Ok(removed)
    }

    /// Store a whole file at once (an upload from this instance's own user).
    pub fn put(&self, bytes: &[u8]) -> Result<BlobHash, BlobError> {
        let hash = BlobHash::of(bytes);
        if self.has(&hash) {
            return Ok(hash);
        }
        // Whatever a cut upload left is replaced: these bytes are complete.
        let _ = fs::remove_file(self.partial_path(&hash));
        self.append(&hash, 0, bytes)?;
        self.finish(&hash)?;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hashes_parse_only_from_64_lowercase_hex() {
        let h = BlobHash::of(b"x");
        assert_eq!(h.to_hex().parse::<BlobHash>().unwrap(), h);
        assert!("ABCD".parse::<BlobHash>().is_err());
        assert!(h.to_hex().to_uppercase().parse::<BlobHash>().is_err());
        assert!("../../etc/passwd".parse::<BlobHash>().is_err());
        assert!(format!("{}0", h).parse::<BlobHash>().is_err());
    }

    #[test]
    fn a_blob_is_stored_once_and_wrong_bytes_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let a = store.put(b"photo one").unwrap();
        assert_eq!(store.put(b"photo one").unwrap(), a);
        assert!(store.has(&a));

        let claimed = BlobHash::of(b"what was promised");
        store.append(&claimed, 0, b"something else").unwrap();
        assert!(matches!(
            store.finish(&claimed),
            Err(BlobError::Mismatch(_))
        ));
        assert!(!store.has(&claimed));
        assert_eq!(store.partial_len(&claimed).unwrap(), 0, "bad bytes stay");
    }

    #[test]
    fn an_append_at_the_wrong_offset_says_where_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let h = BlobHash::of(b"0123456789");
        store.append(&h, 0, b"01234").unwrap();
        match store.append(&h, 3, b"3456789") {
            Err(BlobError::Offset { offset: 3, held: 5 }) => {}
            other => panic!("{other:?}"),
        }
        // The same chunk again is refused too, not written twice.
        assert!(store.append(&h, 0, b"01234").is_err());
        store.append(&h, 5, b"56789").unwrap();
        assert_eq!(store.finish(&h).unwrap(), 10);
    }

    #[test]
    fn collection_keeps_referenced_and_recent_files() {
        use std::collections::HashSet;
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let kept = store.put(b"referenced").unwrap();
        let orphan = store.put(b"never synced").unwrap();
        let half = BlobHash::of(b"an upload that stopped");
        store.append(&half, 0, b"an upload").unwrap();
        let referenced: HashSet<BlobHash> = [kept].into_iter().collect();

        // Within the grace period nothing goes.
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        assert!(store
            .collect(&referenced, long_ago, false)
            .unwrap()
            .is_empty());
        // Past it, the dry run reports and removes nothing.
        let later = SystemTime::now() + Duration::from_secs(3600);
        let report = store.collect(&referenced, later, true).unwrap();
        assert_eq!(report.len(), 2);
        assert!(store.has(&orphan));
        // The real run removes the orphan and the stopped upload, never the referenced file.
        let mut gone: Vec<BlobHash> = store
            .collect(&referenced, later, false)
            .unwrap()
            .into_iter()
            .map(|(h, _, _)| h)
            .collect();
        gone.sort();
        let mut expected = vec![orphan, half];
        expected.sort();
        assert_eq!(gone, expected);
        assert!(store.has(&kept));
        assert!(!store.has(&orphan));
        assert_eq!(store.partial_len(&half).unwrap(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// However an upload is cut into chunks, and whatever chunks are
        /// resent, the blob ends complete and equal to the file.
        #[test]
        fn cut_and_resent_uploads_end_identical(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec((0usize..4096, any::<bool>()), 0..12),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = BlobStore::open(dir.path()).unwrap();
            let hash = BlobHash::of(&data);
            let mut sent_to = 0usize;
            for (cut, resend_from_zero) in cuts {
                let end = cut.min(data.len()).max(sent_to);
                let from = if resend_from_zero { 0 } else { sent_to };
                match store.append(&hash, from as u64, &data[from..end]) {
                    Ok(held) => sent_to = held as usize,
                    Err(BlobError::Offset { held, .. }) => sent_to = held as usize,
                    Err(e) => panic!("{e}"),
                }
            }
            let held = store.partial_len(&hash).unwrap() as usize;
            store.append(&hash, held as u64, &data[held..]).unwrap();
            store.finish(&hash).unwrap();
            prop_assert_eq!(std::fs::read(store.path(&hash).unwrap()).unwrap(), data);
        }
    }
}
