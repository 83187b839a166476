//! Backups: one file holding a data directory's store as it was at one moment
//! (every write entirely in or entirely out), its attachment files and its
//! key; versioned, and checksummed so a damaged copy is refused before
//! anything is written.
//!
//! Layout: `TLBACKUP`, the backup format and the data format (u32, big
//! endian), then a zstd stream of frames — store entries (tree, key, value),
//! then files (path, size, bytes), then an end mark — and last the SHA-256 of
//! everything before it.

use crate::data_dir::DATA_FORMAT;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tideline_sync::blobs::{BlobHash, BlobStore};
use tideline_sync::{DocStore, SledStore, StoreError};

const MAGIC: &[u8; 8] = b"TLBACKUP";
/// The layout of this file; raise it when it changes.
pub const BACKUP_FORMAT: u32 = 1;
const HEADER: u64 = 16;
const DIGEST: u64 = 32;

const END: u8 = 0;
const ENTRY: u8 = 1;
const FILE: u8 = 2;

/// Bounds on what a backup may claim, so a damaged length cannot make a
/// restore allocate without limit.
const MAX_KEY: usize = 64 * 1024;
const MAX_VALUE: usize = 512 * 1024 * 1024;
const MAX_PATH: usize = 512;
const MAX_FILE: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} is not a Tideline backup")]
    NotABackup(PathBuf),
    #[error("{path} is damaged: its checksum does not match its contents; nothing was restored")]
    Checksum { path: PathBuf },
    #[error(
        "{path} was written by a newer Tideline (backup format {backup}, data format {data}); \
         restore it with that version or a later one"
    )]
    Newer {
        path: PathBuf,
        backup: u32,
        data: u32,
    },
    #[error("the backup is damaged: {0}; nothing was restored")]
    Corrupt(String),
    #[error("{0} is not empty; restore into a new directory (move the old one away first)")]
    NotEmpty(PathBuf),
}

/// What a backup holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub entries: u64,
    pub files: u64,
}

/// Passes writes through and hashes them.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn put_bytes(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(&(bytes.len() as u32).to_be_bytes())?;
    w.write_all(bytes)
}

/// The files a backup carries besides the store: the key, and every
/// complete attachment (unfinished uploads are left out).
fn files_of(data_dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let key = data_dir.join("identity.key");
    if key.is_file() {
        files.push(("identity.key".to_string(), key));
    }
    let blobs = BlobStore::open(data_dir).map_err(io::Error::other)?;
    for path in blobs.complete_files().map_err(io::Error::other)? {
        if let Ok(relative) = path.strip_prefix(data_dir) {
            files.push((relative.to_string_lossy().into_owned(), path.clone()));
        }
    }
    Ok(files)
}

/// Write a backup of the store and the files of `data_dir` to `out`.
pub fn write(
    store: &dyn DocStore,
    data_dir: &Path,
    out: impl Write,
) -> Result<Contents, BackupError> {
    let mut hashing = Hashing {
        inner: out,
        hash: Sha256::new(),
    };
    hashing.write_all(MAGIC)?;
    hashing.write_all(&BACKUP_FORMAT.to_be_bytes())?;
    hashing.write_all(&DATA_FORMAT.to_be_bytes())?;
    let mut z = zstd::Encoder::new(hashing, 3)?;
    let mut contents = Contents::default();
    store.export(&mut |tree, k, v| {
        let tree_tag = match tree {
            "records" => 0u8,
            "meta" => 1u8,
            other => return Err(StoreError::Io(format!("unknown tree {other}"))),
        };
        let mut frame = || -> io::Result<()> {
            z.write_all(&[ENTRY, tree_tag])?;
            put_bytes(&mut z, k)?;
            put_bytes(&mut z, v)
        };
        frame().map_err(|e| StoreError::Io(e.to_string()))?;
        contents.entries += 1;
        Ok(())
    })?;
    // Files after the store: a file a stored record references was stored
    // before that record, so it is here.
    for (name, path) in files_of(data_dir)? {
        let mut f = match File::open(&path) {
            Ok(f) => f,
            // Removed meanwhile (garbage collection of an unreferenced file).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let size = f.metadata()?.len();
        z.write_all(&[FILE])?;
        z.write_all(&(name.len() as u16).to_be_bytes())?;
        z.write_all(name.as_bytes())?;
        z.write_all(&size.to_be_bytes())?;
        let copied = io::copy(&mut (&mut f).take(size), &mut z)?;
        if copied != size {
            return Err(BackupError::Io(io::Error::other(format!(
                "{} changed while it was being backed up",
                path.display()
            ))));
        }
        contents.files += 1;
    }
    z.write_all(&[END])?;
    let mut hashing = z.finish()?;
    let digest = hashing.hash.finalize_reset();
    hashing.inner.write_all(&digest)?;
    hashing.inner.flush()?;
    Ok(contents)
}

/// Check a backup file: its header and its checksum. Returns the data
/// format it holds.
fn verify(path: &Path) -> Result<u32, BackupError> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let not_backup = || BackupError::NotABackup(path.to_path_buf());
    if len < HEADER + DIGEST {
        return Err(not_backup());
    }
    let mut header = [0u8; HEADER as usize];
    f.read_exact(&mut header)?;
    if &header[..8] != MAGIC {
        return Err(not_backup());
    }
    let backup = u32::from_be_bytes(header[8..12].try_into().map_err(|_| not_backup())?);
    let data = u32::from_be_bytes(header[12..16].try_into().map_err(|_| not_backup())?);
    if backup > BACKUP_FORMAT || data > DATA_FORMAT {
        return Err(BackupError::Newer {
            path: path.to_path_buf(),
            backup,
            data,
        });
    }
    f.seek(SeekFrom::Start(0))?;
    let mut hash = Sha256::new();
    io::copy(&mut (&mut f).take(len - DIGEST), &mut hash)?;
    let mut stored = [0u8; DIGEST as usize];
    f.read_exact(&mut stored)?;
    if hash.finalize()[..] != stored[..] {
        return Err(BackupError::Checksum {
            path: path.to_path_buf(),
        });
    }
    Ok(data)
}

fn corrupt(what: &str) -> BackupError {
    BackupError::Corrupt(what.to_string())
}

fn read_u32(r: &mut impl Read) -> Result<u32, BackupError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(|_| corrupt("it ends early"))?;
    Ok(u32::from_be_bytes(b))
}

fn read_bytes(r: &mut impl Read, max: usize) -> Result<Vec<u8>, BackupError> {
    let len = read_u32(r)? as usize;
    if len > max {
        return Err(corrupt("a length is out of range"));
    }
    let mut v = vec![0u8; len];
    r.read_exact(&mut v).map_err(|_| corrupt("it ends early"))?;
    Ok(v)
}

/// Restore the backup at `input` into `data_dir`, which must not exist or be
/// empty. Nothing is written before the whole file has been checked, and a
/// failure half-way removes what was written.
pub fn restore(input: &Path, data_dir: &Path) -> Result<Contents, BackupError> {
    if data_dir.exists() && fs::read_dir(data_dir)?.next().is_some() {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    verify(input)?;
    let existed = data_dir.exists();
    let result = restore_into(input, data_dir);
    if result.is_err() {
        // Leave the directory as it was: absent, or empty.
        let _ = fs::remove_dir_all(data_dir);
        if existed {
            let _ = fs::create_dir(data_dir);
        }
    }
    result
}

fn restore_into(input: &Path, data_dir: &Path) -> Result<Contents, BackupError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)?;
    let len = fs::metadata(input)?.len();
    let mut f = File::open(input)?;
    f.seek(SeekFrom::Start(HEADER))?;
    let body = BufReader::new(f.take(len - HEADER - DIGEST));
    let mut z = zstd::Decoder::new(body)?;
    let mut contents = Contents::default();
    let mut next_tag = None;
    {
        let mut entries = std::iter::from_fn(|| {
            let mut tag = [0u8; 1];
            if z.read_exact(&mut tag).is_err() {
                return Some(Err(StoreError::Corrupt("the backup ends early".into())));
            }
            if tag[0] != ENTRY {
                next_tag = Some(tag[0]);
                return None;
            }
            let mut tree = [0u8; 1];
            let read = (|| -> Result<(String, Vec<u8>, Vec<u8>), BackupError> {
                z.read_exact(&mut tree)
                    .map_err(|_| corrupt("it ends early"))?;
                let name = match tree[0] {
                    0 => "records",
                    1 => "meta",
                    _ => return Err(corrupt("an unknown part of the store")),
                };
                let k = read_bytes(&mut z, MAX_KEY)?;
                let v = read_bytes(&mut z, MAX_VALUE)?;
                Ok((name.to_string(), k, v))
            })();
            contents.entries += 1;
            Some(read.map_err(|e| StoreError::Corrupt(e.to_string())))
        });
        SledStore::import(data_dir, &mut entries)?;
    }
    let blobs = BlobStore::open(data_dir).map_err(|e| BackupError::Io(io::Error::other(e)))?;
    let mut tag = next_tag.ok_or_else(|| corrupt("it ends early"))?;
    while tag == FILE {
        let mut n = [0u8; 2];
        z.read_exact(&mut n).map_err(|_| corrupt("it ends early"))?;
        let name_len = u16::from_be_bytes(n) as usize;
        if name_len > MAX_PATH {
            return Err(corrupt("a file name is too long"));
        }
        let mut name = vec![0u8; name_len];
        z.read_exact(&mut name)
            .map_err(|_| corrupt("it ends early"))?;
        let name = String::from_utf8(name).map_err(|_| corrupt("a file name is not text"))?;
        let mut s = [0u8; 8];
        z.read_exact(&mut s).map_err(|_| corrupt("it ends early"))?;
        let size = u64::from_be_bytes(s);
        if size > MAX_FILE {
            return Err(corrupt("a file is too large"));
        }
        let mut bytes = Vec::new();
        (&mut z).take(size).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != size {
            return Err(corrupt("it ends early"));
        }
        if name == "identity.key" {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(data_dir.join("identity.key"))?;
            out.write_all(&bytes)?;
            out.sync_all()?;
        } else {
            // Only attachments, each stored under its own SHA-256.
            let hash: BlobHash = name
                .rsplit('/')
                .next()
                .and_then(|h| h.parse().ok())
                .filter(|_| name.starts_with("attachments/"))
                .ok_or_else(|| corrupt("it holds an unexpected file"))?;
            let stored = blobs
                .put(&bytes)
                .map_err(|e| BackupError::Io(io::Error::other(e)))?;
            if stored != hash {
                return Err(corrupt("an attachment does not match its SHA-256"));
            }
        }
        contents.files += 1;
        let mut t = [0u8; 1];
        z.read_exact(&mut t).map_err(|_| corrupt("it ends early"))?;
        tag = t[0];
    }
    if tag != END {
        return Err(corrupt("an unknown part"));
    }
    fs::File::open(data_dir)?.sync_all()?;
    Ok(contents)
}
