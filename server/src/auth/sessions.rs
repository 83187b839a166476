//! Login sessions and the brakes on password guessing.
//!
//! A session is a random 256-bit token handed to the user once; the instance
//! keeps only its SHA-256, so a copy of the store, the memory or a log line
//! cannot be replayed. Sessions end after an idle period and, whatever the
//! activity, at an absolute lifetime. They are kept in the store (state key
//! `auth/session/<hash>`), so a restart of the instance — a boat laptop
//! rebooted mid-patrol — does not sign anyone out of a report they are
//! typing; a memory cache in front answers most requests without a read.

use super::users::{Role, User, Username};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tideline_sync::store::{Commit, StateWrite};
use tideline_sync::{DocStore, StoreError};

/// Prefix of session tokens, so a device credential is never mistaken for one.
pub const TOKEN_PREFIX: &str = "tls_";

pub const DEFAULT_IDLE: Duration = Duration::from_secs(8 * 3600);
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

const SESSION_PREFIX: &[u8] = b"auth/session/";
/// How stale the stored last use may get before it is written again: often
/// enough that a restart costs at most this much of the idle time, rarely
/// enough that a busy page is not a store write per request.
const TOUCH_EVERY: u64 = 60;

/// The person behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub username: Username,
    pub role: Role,
    pub station: String,
}

/// A session as stored; times in seconds since the Unix epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    username: String,
    role: Role,
    station: String,
    created: u64,
    last_seen: u64,
    /// `last_seen` as last written to the store.
    #[serde(skip)]
    stored_seen: u64,
}

impl Session {
    fn user(&self) -> Option<SessionUser> {
        Some(SessionUser {
            username: Username::try_from(self.username.clone()).ok()?,
            role: self.role,
            station: self.station.clone(),
        })
    }
}

pub struct Sessions {
    store: Arc<dyn DocStore>,
    cache: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    max_age: Duration,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn key(hash: &[u8; 32]) -> Vec<u8> {
    [SESSION_PREFIX, hash].concat()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn encode(session: &Session) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(session).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A one-time code people can read out or type from a message: `groups` of
/// four characters from an alphabet without look-alikes (5 bits each).
pub fn readable_code(groups: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = vec![0u8; groups * 4];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// 32 random bytes, URL-safe base64, behind `prefix`.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", B64.encode(bytes))
}

impl Sessions {
    pub fn new(store: Arc<dyn DocStore>, idle: Duration, max_age: Duration) -> Self {
        Sessions {
            store,
            cache: Mutex::new(HashMap::new()),
            idle,
            max_age,
        }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expired(&self, s: &Session, now: u64) -> bool {
        now.saturating_sub(s.last_seen) >= self.idle.as_secs()
            || now.saturating_sub(s.created) >= self.max_age.as_secs()
    }

    fn remove_stored(&self, hashes: Vec<[u8; 32]>) -> Result<(), StoreError> {
        if hashes.is_empty() {
            return Ok(());
        }
        self.store.commit(Commit {
            records: Vec::new(),
            state: hashes
                .iter()
                .map(|h| StateWrite {
                    key: key(h),
                    value: None,
                })
                .collect(),
        })?;
        Ok(())
    }

    /// Every stored session, by hash (unreadable entries are left out).
    fn stored(&self) -> Result<Vec<([u8; 32], Session)>, StoreError> {
        Ok(self
            .store
            .scan_state(SESSION_PREFIX)?
            .into_iter()
            .filter_map(|(k, v)| {
                let hash: [u8; 32] = k[SESSION_PREFIX.len()..].try_into().ok()?;
                Some((hash, serde_json::from_slice(&v).ok()?))
            })
            .collect())
    }

    /// Start a session for `user`; returns the token to give them, once the
    /// session is durable.
    pub fn start(&self, user: &User) -> Result<String, StoreError> {
        self.start_at(user, now_secs())
    }

    fn start_at(&self, user: &User, now: u64) -> Result<String, StoreError> {
        let token = random_token(TOKEN_PREFIX);
        let session = Session {
            username: user.username.to_string(),
            role: user.role,
            station: user.station.clone(),
            created: now,
            last_seen: now,
            stored_seen: now,
        };
        // Forget expired sessions now and then, so the store stays small.
        let expired: Vec<[u8; 32]> = self
            .stored()?
            .into_iter()
            .filter(|(_, s)| self.expired(s, now))
            .map(|(h, _)| h)
            .collect();
        let h = hash(&token);
        let mut state: Vec<StateWrite> = expired
            .iter()
            .map(|h| StateWrite {
                key: key(h),
                value: None,
            })
            .collect();
        state.push(StateWrite {
            key: key(&h),
            value: Some(encode(&session)?),
        });
        self.store.commit(Commit {
            records: Vec::new(),
            state,
        })?;
        let mut cache = self.cache();
        for h in &expired {
            cache.remove(h);
        }
        cache.insert(h, session);
        Ok(token)
    }

    /// The user behind a live token, marking it used now.
    pub fn check(&self, token: &str) -> Option<SessionUser> {
        match self.check_at(token, now_secs()) {
            Ok(user) => user,
            Err(e) => {
                tracing::error!(error = %e, "could not read a session");
                None
            }
        }
    }

    fn check_at(&self, token: &str, now: u64) -> Result<Option<SessionUser>, StoreError> {
        let h = hash(token);
        let mut cache = self.cache();
        let session = match cache.entry(h) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                // Not seen since this process started: perhaps from before a restart.
                let Some(bytes) = self.store.get_state(&key(&h))? else {
                    return Ok(None);
                };
                let Ok(mut session) = serde_json::from_slice::<Session>(&bytes) else {
                    return Ok(None);
                };
                session.stored_seen = session.last_seen;
                e.insert(session)
            }
        };
        if self.expired(session, now) {
            cache.remove(&h);
            drop(cache);
            self.remove_stored(vec![h])?;
            return Ok(None);
        }
        session.last_seen = session.last_seen.max(now);
        if session.last_seen >= session.stored_seen + TOUCH_EVERY {
            // Lazily: losing it in a crash only shortens the idle time left.
            self.store.put_state_lazy(vec![StateWrite {
                key: key(&h),
                value: Some(encode(session)?),
            }])?;
            session.stored_seen = session.last_seen;
        }
        Ok(session.user())
    }

    pub fn end(&self, token: &str) -> Result<bool, StoreError> {
        let h = hash(token);
        let cached = self.cache().remove(&h).is_some();
        let stored = self.store.get_state(&key(&h))?.is_some();
        self.remove_stored(vec![h])?;
        Ok(cached || stored)
    }

    /// End every session of a user (disabled, or role changed).
    pub fn end_all_of(&self, username: &Username) -> Result<(), StoreError> {
        self.cache().retain(|_, s| s.username != username.as_str());
        let theirs = self
            .stored()?
            .into_iter()
            .filter(|(_, s)| s.username == username.as_str())
            .map(|(h, _)| h)
            .collect();
        self.remove_stored(theirs)
    }
}

/// Failed logins per key (an account, or an address) within a window.
pub struct Limiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    max: u32,
    window: Duration,
}

impl Limiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Limiter {
            failures: Mutex::new(HashMap::new()),
            max,
            window,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds to wait before trying again, if `key` has used up its attempts.
    pub fn blocked(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let map = self.map();
        let (count, since) = map.get(key)?;
        let left = self.window.checked_sub(now - *since)?;
        (*count >= self.max).then(|| left.as_secs().max(1))
    }

    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        let mut map = self.map();
        let window = self.window;
        map.retain(|_, (_, since)| now - *since < window);
        let entry = map.entry(key.to_string()).or_insert((0, now));
        entry.0 += 1;
    }

    pub fn clear(&self, key: &str) {
        self.map().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            username: Username::try_from("alice".to_string()).unwrap(),
            role: Role::Officer,
            station: "BB-01".into(),
            password_hash: String::new(),
            created_at: String::new(),
            disabled: false,
        }
    }

    fn sessions(store: &Arc<dyn DocStore>) -> Sessions {
        Sessions::new(
            store.clone(),
            Duration::from_secs(60),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn a_session_lives_until_idle_or_too_old_or_ended() {
        let store: Arc<dyn DocStore> = Arc::new(tideline_sync::MemoryStore::new());
        let s = sessions(&store);
        let now = now_secs();
        let t = s.start_at(&user(), now).unwrap();
        assert!(t.starts_with(TOKEN_PREFIX));
        assert_eq!(s.check_at(&t, now).unwrap().unwrap().station, "BB-01");
        // Used every 50 s it stays alive past the idle time, but not past the maximum age.
        assert!(s.check_at(&t, now + 50).unwrap().is_some());
        assert!(s.check_at(&t, now + 100).unwrap().is_some());
        assert!(s.check_at(&t, now + 301).unwrap().is_none());

        let t = s.start_at(&user(), now).unwrap();
        assert!(s.check_at(&t, now + 61).unwrap().is_none());
        let t = s.start(&user()).unwrap();
        assert!(s.end(&t).unwrap());
        assert!(s.check(&t).is_none());
        assert!(s.check("tls_forged").is_none());
    }

    #[test]
    fn a_session_outlives_a_restart_but_not_its_end() {
        let store: Arc<dyn DocStore> = Arc::new(tideline_sync::MemoryStore::new());
        let before = sessions(&store);
        let kept = before.start(&user()).unwrap();
        let ended = before.start(&user()).unwrap();
        before.end(&ended).unwrap();
        let bob = User {
            username: Username::try_from("bob".to_string()).unwrap(),
            ..user()
        };
        let bobs = before.start(&bob).unwrap();
        drop(before);

        let after = sessions(&store);
        assert_eq!(after.check(&kept).unwrap().username.as_str(), "alice");
        assert!(after.check(&ended).is_none());
        after
            .end_all_of(&Username::try_from("alice".to_string()).unwrap())
            .unwrap();
        assert!(sessions(&store).check(&kept).is_none());
        assert!(sessions(&store).check(&bobs).is_some());
        // Only hashes are stored, never the token.
        let stored = store.scan_state(SESSION_PREFIX).unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!stored.iter().any(|(k, v)| {
            [k.as_slice(), v.as_slice()]
                .iter()
                .any(|b| b.windows(bobs.len()).any(|w| w == bobs.as_bytes()))
        }));
    }

    #[test]
    fn the_limiter_blocks_after_the_allowed_failures() {
        let l = Limiter::new(3, Duration::from_secs(900));
        for _ in 0..2 {
            l.fail("alice");
        }
        assert!(l.blocked("alice").is_none());
        l.fail("alice");
        assert!(l.blocked("alice").unwrap() > 0);
        assert!(l.blocked("bob").is_none());
        l.clear("alice");
        assert!(l.blocked("alice").is_none());
    }
}
