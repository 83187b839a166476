//! Photos sent from the entry page on their own, piece by piece, as soon as
//! they are chosen, so that a report's own post never carries a file and a
//! photo never costs a report (docs/DESIGN.md §8).
//!
//! An upload is a file `<data dir>/uploads/<id>.part` that grows by appends
//! at the offset it holds, and a description `<id>.json` (whose person,
//! which field, how big, and for which record if the report has one). A
//! link that drops mid-chunk leaves the file at its last whole append: the
//! browser asks how much is held and carries on from there. Every append is
//! fsynced before it is acknowledged.
//!
//! A complete upload for a saved record is attached at once (and removed
//! here); one for a report not yet saved stays, marked complete, until the
//! report's save names its hash and attaches it. Nothing here is shared
//! between people: an upload is found only by the person who began it.
//! Uploads untouched for [`KEEP_FOR`] are removed when a new one begins.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tideline_schemas::RecordId;
use tideline_sync::blobs::BlobHash;
use uuid::Uuid;

/// How long an upload nobody finishes or attaches is kept.
pub const KEEP_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// What an upload is for, and how far it has come.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Upload {
    pub id: Uuid,
    /// The actor who began it (`user:<name>`); nobody else may touch it.
    pub owner: String,
    /// The file's name as the officer knows it.
    pub name: String,
    /// The size announced at the start; the upload is complete at this size.
    pub size: u64,
    /// The image field the photo goes in.
    pub field: String,
    /// The saved record it is attached to when complete; None until the
    /// report has been saved (then its save attaches it).
    pub record: Option<RecordId>,
    /// Set once every byte is here and its type was accepted.
    pub sha256: Option<BlobHash>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("there is no upload {0} of yours here (it may have finished or expired)")]
    NotFound(Uuid),
    #[error("the upload continues at byte {held}, not {offset}")]
    Offset { offset: u64, held: u64 },
    #[error("the upload is {size} bytes; this chunk would take it past that")]
    PastEnd { size: u64 },
    #[error("uploads: {0}")]
    Io(String),
}

fn io(e: io::Error) -> UploadError {
    UploadError::Io(e.to_string())
}

fn sync_dir(dir: &Path) -> Result<(), UploadError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// The uploads of this instance's own people, in progress or waiting for
/// their report.
pub struct Uploads {
    dir: PathBuf,
    /// One append at a time, so two retries of one chunk cannot interleave.
    lock: Mutex<()>,
}

impl Uploads {
    /// The uploads in `data_dir/uploads`, created if needed.
    pub fn open(data_dir: &Path) -> Result<Uploads, UploadError> {
        let dir = data_dir.join("uploads");
        fs::create_dir_all(&dir).map_err(io)?;
        Ok(Uploads {
            dir,
            lock: Mutex::new(()),
        })
    }

    fn part(&self, id: &Uuid) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn meta(&self, id: &Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write an upload's description durably (a temporary file renamed over
    /// it, so a crash leaves the old one or the new one).
    fn write_meta(&self, upload: &Upload) -> Result<(), UploadError> {
        let tmp = self.dir.join(format!("{}.json.tmp", upload.id));
        let json = serde_json::to_vec(upload).map_err(|e| UploadError::Io(e.to_string()))?;
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, self.meta(&upload.id)).map_err(io)?;
        sync_dir(&self.dir)
    }

    fn read_meta(&self, id: &Uuid) -> Result<Option<Upload>, UploadError> {
        match fs::read(self.meta(id)) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Begin an upload, durably, and forget those left for too long.
    pub fn begin(&self, upload: &Upload) -> Result<(), UploadError> {
        self.sweep(SystemTime::now() - KEEP_FOR)?;
        let _g = self.guard();
        File::create(self.part(&upload.id))
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        self.write_meta(upload)
    }

    /// `owner`'s upload `id`.
    pub fn get(&self, owner: &str, id: &Uuid) -> Result<Upload, UploadError> {
        match self.read_meta(id)? {
            Some(u) if u.owner == owner => Ok(u),
            _ => Err(UploadError::NotFound(*id)),
        }
    }

    /// Bytes held of upload `id`.
    pub fn held(&self, id: &Uuid) -> Result<u64, UploadError> {
        match fs::metadata(self.part(id)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(UploadError::NotFound(*id)),
            Err(e) => Err(io(e)),
        }
    }

    /// Append `bytes` at `offset` to `owner`'s upload `id`, durably; returns
    /// the bytes now held. Only the offset held is accepted, so a chunk sent
    /// again after a lost answer is never written twice.
    pub fn append(
        &self,
        owner: &str,
        id: &Uuid,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, UploadError> {
        let upload = self.get(owner, id)?;
        let _g = self.guard();
        let held = self.held(id)?;
        if offset != held {
            return Err(UploadError::Offset { offset, held });
        }
        if held + bytes.len() as u64 > upload.size {
            return Err(UploadError::PastEnd { size: upload.size });
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.part(id))
            .map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_data().map_err(io)?;
        Ok(held + bytes.len() as u64)
    }

    /// Every byte of upload `id`.
    pub fn bytes(&self, id: &Uuid) -> Result<Vec<u8>, UploadError> {
        fs::read(self.part(id)).map_err(io)
    }

    /// Mark upload `id` complete under `hash`, to wait for its report.
    pub fn complete(&self, upload: &Upload, hash: BlobHash) -> Result<Upload, UploadError> {
        let _g = self.guard();
        let done = Upload {
            sha256: Some(hash),
            ..upload.clone()
        };
        self.write_meta(&done)?;
        Ok(done)
    }

    /// Forget upload `id` (attached, refused or abandoned).
    pub fn remove(&self, id: &Uuid) -> Result<(), UploadError> {
        let _g = self.guard();
        for path in [self.meta(id), self.part(id)] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        sync_dir(&self.dir)
    }

    /// `owner`'s complete uploads still waiting for their report.
    pub fn waiting(&self, owner: &str) -> Result<Vec<Upload>, UploadError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<Uuid>().ok())
            else {
                continue;
            };
            if let Some(u) = self.read_meta(&id)? {
                if u.owner == owner && u.sha256.is_some() {
                    out.push(u);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Remove every upload whose files were all last touched before `before`.
    fn sweep(&self, before: SystemTime) -> Result<(), UploadError> {
        let _g = self.guard();
        let mut newest: std::collections::HashMap<String, (SystemTime, Vec<PathBuf>)> =
            std::collections::HashMap::new();
        for entry in fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let touched = entry.metadata().and_then(|m| m.modified()).map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.split('.').next().unwrap_or_default().to_string();
            let slot = newest.entry(stem).or_insert((touched, Vec::new()));
            slot.0 = slot.0.max(touched);
            slot.1.push(entry.path());
        }
        for (touched, paths) in newest.into_values() {
            if touched >= before {
                continue;
            }
            for path in paths {
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(owner: &str, size: u64) -> Upload {
        Upload {
            id: Uuid::new_v4(),
            owner: owner.into(),
            name: "deck.jpg".into(),
            size,
            field: "photos".into(),
            record: None,
            sha256: None,
        }
    }

    #[test]
    fn a_cut_upload_resumes_at_what_is_held_and_a_resent_chunk_is_not_written_twice() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::open(dir.path()).unwrap();
        let u = upload("user:pc.james", 10);
        uploads.begin(&u).unwrap();
        assert_eq!(uploads.append(&u.owner, &u.id, 0, b"hello").unwrap(), 5);
        // The answer was lost; the browser sends the chunk again.
        assert!(matches!(
            uploads.append(&u.owner, &u.id, 0, b"hello"),
            Err(UploadError::Offset { held: 5, .. })
        ));
        assert!(matches!(
            uploads.append(&u.owner, &u.id, 5, b"world!"),
            Err(UploadError::PastEnd { size: 10 })
        ));
        assert_eq!(uploads.append(&u.owner, &u.id, 5, b"world").unwrap(), 10);
        assert_eq!(uploads.bytes(&u.id).unwrap(), b"helloworld");
        // Reopened (a restart): still there.
        let again = Uploads::open(dir.path()).unwrap();
        assert_eq!(again.held(&u.id).unwrap(), 10);
    }

    #[test]
    fn nobody_else_sees_or_touches_an_upload() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::open(dir.path()).unwrap();
        let u = upload("user:pc.james", 3);
        uploads.begin(&u).unwrap();
        assert!(matches!(
            uploads.get("user:pc.noel", &u.id),
            Err(UploadError::NotFound(_))
        ));
        assert!(uploads.append("user:pc.noel", &u.id, 0, b"abc").is_err());
        uploads.append(&u.owner, &u.id, 0, b"abc").unwrap();
        uploads.complete(&u, BlobHash::of(b"abc")).unwrap();
        assert_eq!(uploads.waiting(&u.owner).unwrap().len(), 1);
        assert!(uploads.waiting("user:pc.noel").unwrap().is_empty());
        uploads.remove(&u.id).unwrap();
        assert!(uploads.waiting(&u.owner).unwrap().is_empty());
        assert!(matches!(uploads.held(&u.id), Err(UploadError::NotFound(_))));
    }
}
