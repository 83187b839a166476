//! The instance's own identity: its id (the device id its Automerge actor is
//! derived from) and an ed25519 key pair, made at first start and kept in
//! `identity.key` in the data directory, readable by the owner only.
//!
//! The file is TOML so an operator can read which instance a data directory
//! belongs to; it is read without opening the store, so `tideline identity`
//! works while `tideline serve` holds the directory.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const KEY_FILE: &str = "identity.key";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{0} is not a Tideline identity file: {1}")]
    Malformed(PathBuf, String),
    #[error(
        "{path} can be read by other users (mode {mode:o}); the instance key must be \
         owner-only: run `chmod 600 {path}`"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "{path} belongs to instance {file}, but this data directory's store is instance \
         {store}; was the key file copied from another instance?"
    )]
    Mismatch {
        path: PathBuf,
        file: uuid::Uuid,
        store: uuid::Uuid,
    },
    #[error("{0} has no identity yet; start the instance once (`tideline serve`) to create it")]
    Missing(PathBuf),
}

/// The instance id and its key pair.
pub struct InstanceKey {
    pub instance: uuid::Uuid,
    signing: SigningKey,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    instance: uuid::Uuid,
    /// The ed25519 secret key (32-byte seed), base64.
    secret_key: String,
}

impl InstanceKey {
    /// An ed25519 signature by the instance key.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing.sign(message).to_bytes()
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key as base64, as `tideline identity` prints it.
    pub fn public_key_base64(&self) -> String {
        B64.encode(self.public_key().as_bytes())
    }

    /// Load the key of `instance` from `data_dir`, creating it (and making the
    /// data directory owner-only) the first time.
    pub fn load_or_create(data_dir: &Path, instance: uuid::Uuid) -> Result<Self, IdentityError> {
        match Self::load(data_dir) {
            Ok(key) if key.instance == instance => Ok(key),
            Ok(key) => Err(IdentityError::Mismatch {
                path: data_dir.join(KEY_FILE),
                file: key.instance,
                store: instance,
            }),
            Err(IdentityError::Missing(_)) => Self::create(data_dir, instance),
            Err(e) => Err(e),
        }
    }

    /// Load an existing key; refuses one others can read.
    pub fn load(data_dir: &Path) -> Result<Self, IdentityError> {
        let path = data_dir.join(KEY_FILE);
        let io = |e: std::io::Error| IdentityError::Io {
            path: path.clone(),
            message: e.to_string(),
        };
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IdentityError::Missing(data_dir.to_path_buf()))
            }
            Err(e) => return Err(io(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed { path, mode });
        }
        let text = fs::read_to_string(&path).map_err(io)?;
        let file: KeyFile = toml::from_str(&text)
            .map_err(|e| IdentityError::Malformed(path.clone(), e.to_string()))?;
        let seed: [u8; 32] = B64
            .decode(file.secret_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| IdentityError::Malformed(path.clone(), "bad secret_key".into()))?;
        Ok(InstanceKey {
            instance: file.instance,
            signing: SigningKey::from_bytes(&seed),
        })
    }

    fn create(data_dir: &Path, instance: uuid::Uuid) -> Result<Self, IdentityError> {
        let path = data_dir.join(KEY_FILE);
        let io = |e: std::io::Error| IdentityError::Io {
            path: path.clone(),
            message: e.to_string(),
        };
        // Everything in the data directory is evidence or credentials.
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        let signing = SigningKey::generate(&mut rand_core::OsRng);
        let file = KeyFile {
            instance,
            secret_key: B64.encode(signing.to_bytes()),
        };
        let text = format!(
            "# Tideline instance identity. Secret: never copy it to another machine.\n{}",
            toml::to_string(&file)
                .map_err(|e| IdentityError::Malformed(path.clone(), e.to_string()))?
        );
        // Written under a temporary name and renamed, so a crash never leaves a
        // half-written key that would stop the next start.
        let tmp = data_dir.join(format!("{KEY_FILE}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(InstanceKey { instance, signing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4();
        let made = InstanceKey::load_or_create(dir.path(), id).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let again = InstanceKey::load_or_create(dir.path(), id).unwrap();
        assert_eq!(again.instance, id);
        assert_eq!(again.public_key_base64(), made.public_key_base64());
    }

    #[test]
    fn a_key_others_can_read_or_of_another_instance_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let id = uuid::Uuid::new_v4();
        InstanceKey::load_or_create(dir.path(), id).unwrap();
        let other = uuid::Uuid::new_v4();
        assert!(matches!(
            InstanceKey::load_or_create(dir.path(), other),
            Err(IdentityError::Mismatch { .. })
        ));
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = InstanceKey::load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_damaged_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(b"instance = 3\n")
            .unwrap();
        assert!(matches!(
            InstanceKey::load(dir.path()),
            Err(IdentityError::Malformed(..))
        ));
    }
}
