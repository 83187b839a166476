//! People: local accounts with one role and one station (or HQ, which sees
//! every station). Passwords are kept only as argon2id hashes.
//!
//! Accounts live in the store's state space under `auth/user/<name>`, written
//! durably: an account an admin was told exists must survive a crash.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tideline_sync::store::{Commit, StateWrite};
use tideline_sync::{DocStore, StoreError};

const USER_PREFIX: &[u8] = b"auth/user/";
/// The station code of headquarters: users and devices there see all stations.
pub const HQ: &str = "HQ";
pub const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Enters and edits the station's records.
    Officer,
    /// An officer who also reviews: status, comments, conflict resolution.
    Supervisor,
    /// Reads and exports everything in scope; writes nothing.
    Analyst,
    /// Manages users, stations and devices.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Officer, Role::Supervisor, Role::Analyst, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Supervisor => "supervisor",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UserError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UserError::BadRole(s.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unknown role {0:?}: use officer, supervisor, analyst or admin")]
    BadRole(String),
    #[error(
        "a username is 1 to 64 characters: lowercase letters, digits, '.', '_' or '-' (got {0:?})"
    )]
    BadName(String),
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("a password may be at most {MAX_PASSWORD_BYTES} bytes")]
    LongPassword,
    #[error("a station code is 1 to 32 characters of A-Z, 0-9 and '-' (got {0:?})")]
    BadStation(String),
    #[error("user {0} already exists")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not hash the password: {0}")]
    Hash(String),
}

/// A username, checked once at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

/// A user name as a person typed it, the way names are kept: without the
/// spaces around it and in lower case (a tablet capitalises the first letter).
pub fn typed_name(typed: &str) -> String {
    typed.trim().to_ascii_lowercase()
}

impl TryFrom<String> for Username {
    type Error = UserError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Username(s))
        } else {
            Err(UserError::BadName(s))
        }
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl Username {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Check a station code (also used for `HQ`).
pub fn station_code(s: &str) -> Result<String, UserError> {
    let ok =
        (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(UserError::BadStation(s.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub username: Username,
    pub role: Role,
    /// The station whose records the user works with, or [`HQ`] for all.
    pub station: String,
    /// PHC string: `$argon2id$v=19$m=...`.
    pub password_hash: String,
    pub created_at: String,
    pub disabled: bool,
}

fn user_key(name: &Username) -> Vec<u8> {
    let mut k = USER_PREFIX.to_vec();
    k.extend_from_slice(name.as_str().as_bytes());
    k
}

/// argon2id with 7 MiB of memory and 5 passes: one of OWASP's equivalent
/// minimum settings, chosen over the 19 MiB one because a boat laptop keeps
/// what the allocator took for each login (measured: two default-cost logins
/// raised an idle server from 9 to 49 MiB). Stored hashes carry their own
/// parameters, so changing these affects new passwords only.
fn hasher() -> Argon2<'static> {
    let params = argon2::Params::new(7 * 1024, 5, 1, None).unwrap_or_default();
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

fn hash_password(password: &str) -> Result<String, UserError> {
    check_password(password)?;
    let salt = SaltString::generate(&mut rand_core::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::LongPassword);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::WeakPassword);
    }
    Ok(())
}

/// A stand-in hash checked when the user does not exist, so a failed login
/// takes as long whether or not the name is known.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut rand_core::OsRng);
        hasher()
            .hash_password(b"decoy password, never valid", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

pub fn get(store: &dyn DocStore, name: &Username) -> Result<Option<User>, StoreError> {
    match store.get_state(&user_key(name))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("user {name}"))),
        None => Ok(None),
    }
}

/// The user called `name` as typed; a name no user could have is nobody's.
pub fn find(store: &dyn DocStore, name: &str) -> Result<Option<User>, StoreError> {
    match Username::try_from(name.to_string()) {
        Ok(name) => get(store, &name),
        Err(_) => Ok(None),
    }
}

pub fn list(store: &dyn DocStore) -> Result<Vec<User>, StoreError> {
    store
        .scan_state(USER_PREFIX)?
        .into_iter()
        .map(|(_, bytes)| {
            serde_json::from_slice(&bytes).map_err(|_| StoreError::Corrupt("user".into()))
        })
        .collect()
}

pub fn any_exist(store: &dyn DocStore) -> Result<bool, StoreError> {
    Ok(!store.scan_state(USER_PREFIX)?.is_empty())
}

/// Create a user durably. Refuses an existing name.
pub fn create(
    store: &dyn DocStore,
    name: Username,
    role: Role,
    station: &str,
    password: &str,
) -> Result<User, UserError> {
    let station = station_code(station)?;
    if get(store, &name)?.is_some() {
        return Err(UserError::Exists(name.to_string()));
    }
    let user = User {
        password_hash: hash_password(password)?,
        username: name,
        role,
        station,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        disabled: false,
    };
    let bytes = serde_json::to_vec(&user).map_err(|e| StoreError::Io(e.to_string()))?;
    store.commit(Commit {
        records: Vec::new(),
        state: vec![StateWrite {
            key: user_key(&user.username),
            value: Some(bytes),
        }],
    })?;
    Ok(user)
}

/// What an admin may change about a user; None leaves it as it is.
#[derive(Debug, Default)]
pub struct Change {
    pub role: Option<Role>,
    pub station: Option<String>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

/// Change a user durably; returns the user as now stored.
pub fn update(
    store: &dyn DocStore,
    name: &Username,
    change: Change,
) -> Result<Option<User>, UserError> {
    let Some(mut user) = get(store, name)? else {
        return Ok(None);
    };
    if let Some(role) = change.role {
        user.role = role;
    }
    if let Some(station) = change.station {
        user.station = station_code(&station)?;
    }
    if let Some(disabled) = change.disabled {
        user.disabled = disabled;
    }
    if let Some(password) = change.password {
        user.password_hash = hash_password(&password)?;
    }
    let bytes = serde_json::to_vec(&user).map_err(|e| StoreError::Io(e.to_string()))?;
    store.commit(Commit {
        records: Vec::new(),
        state: vec![StateWrite {
            key: user_key(&user.username),
            value: Some(bytes),
        }],
    })?;
    Ok(Some(user))
}

/// The user if `password` is theirs and the account is enabled. Costs one
/// argon2 verification whether or not the user exists.
pub fn authenticate(
    store: &dyn DocStore,
    name: &str,
    password: &str,
) -> Result<Option<User>, StoreError> {
    let user = find(store, name)?;
    let hash = user
        .as_ref()
        .map_or(decoy_hash(), |u| u.password_hash.as_str());
    let ok = password.len() <= MAX_PASSWORD_BYTES
        && PasswordHash::new(hash)
            .map(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
    Ok(user.filter(|u| ok && !u.disabled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tideline_sync::MemoryStore;

    fn name(s: &str) -> Username {
        Username::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn a_created_user_logs_in_with_their_password_only() {
        let store = MemoryStore::default();
        assert!(!any_exist(&store).unwrap());
        let u = create(
            &store,
            name("alice"),
            Role::Officer,
            "BB-01",
            "correct horse battery",
        )
        .unwrap();
        assert!(u.password_hash.starts_with("$argon2id$"));
        assert!(any_exist(&store).unwrap());
        assert!(authenticate(&store, "alice", "correct horse battery")
            .unwrap()
            .is_some());
        assert!(authenticate(&store, "alice", "wrong password!!")
            .unwrap()
            .is_none());
        assert!(authenticate(&store, "bob", "correct horse battery")
            .unwrap()
            .is_none());
        assert!(authenticate(&store, "../etc", "correct horse battery")
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_names_roles_stations_passwords_and_duplicates_are_refused() {
        let store = MemoryStore::default();
        assert!(Username::try_from("Alice".to_string()).is_err());
        assert!(Username::try_from(String::new()).is_err());
        assert!(Username::try_from("a".repeat(65)).is_err());
        assert!("root".parse::<Role>().is_err());
        assert!(matches!(
            create(
                &store,
                name("a"),
                Role::Admin,
                "BB 01",
                "long enough password"
            ),
            Err(UserError::BadStation(_))
        ));
        assert!(matches!(
            create(&store, name("a"), Role::Admin, "HQ", "short"),
            Err(UserError::WeakPassword)
        ));
        create(&store, name("a"), Role::Admin, HQ, "long enough password").unwrap();
        assert!(matches!(
            create(&store, name("a"), Role::Officer, HQ, "long enough password"),
            Err(UserError::Exists(_))
        ));
        assert_eq!(list(&store).unwrap().len(), 1);
    }
}
