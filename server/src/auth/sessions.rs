//! Login sessions and the brakes on password guessing.
//!
//! A session is a random 256-bit token handed to the user once; the instance
//! keeps only its SHA-256, so a copy of the memory or a log line cannot be
//! replayed. Sessions end after an idle period and, whatever the activity, at
//! an absolute lifetime; they live in memory and end when the instance
//! restarts (people log in again; nothing they typed is lost).

use super::users::{Role, User, Username};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand_core::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Prefix of session tokens, so a device credential is never mistaken for one.
pub const TOKEN_PREFIX: &str = "tls_";

pub const DEFAULT_IDLE: Duration = Duration::from_secs(8 * 3600);
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The person behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub username: Username,
    pub role: Role,
    pub station: String,
}

struct Session {
    user: SessionUser,
    created: Instant,
    last_seen: Instant,
}

pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    max_age: Duration,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
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
    pub fn new(idle: Duration, max_age: Duration) -> Self {
        Sessions {
            by_hash: Mutex::new(HashMap::new()),
            idle,
            max_age,
        }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a session for `user`; returns the token to give them.
    pub fn start(&self, user: &User) -> String {
        let token = random_token(TOKEN_PREFIX);
        let now = Instant::now();
        let mut map = self.map();
        // Forget expired sessions now and then, so the map stays small.
        let (idle, max_age) = (self.idle, self.max_age);
        map.retain(|_, s| now - s.last_seen < idle && now - s.created < max_age);
        map.insert(
            hash(&token),
            Session {
                user: SessionUser {
                    username: user.username.clone(),
                    role: user.role,
                    station: user.station.clone(),
                },
                created: now,
                last_seen: now,
            },
        );
        token
    }

    /// The user behind a live token, marking it used now.
    pub fn check(&self, token: &str) -> Option<SessionUser> {
        self.check_at(token, Instant::now())
    }

    fn check_at(&self, token: &str, now: Instant) -> Option<SessionUser> {
        let key = hash(token);
        let mut map = self.map();
        let session = map.get_mut(&key)?;
        if now - session.last_seen >= self.idle || now - session.created >= self.max_age {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.user.clone())
    }

    pub fn end(&self, token: &str) -> bool {
        self.map().remove(&hash(token)).is_some()
    }

    /// End every session of a user (disabled, or role changed).
    pub fn end_all_of(&self, username: &Username) {
        self.map().retain(|_, s| &s.user.username != username);
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

    #[test]
    fn a_session_lives_until_idle_or_too_old_or_ended() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t = s.start(&user());
        assert!(t.starts_with(TOKEN_PREFIX));
        let now = Instant::now();
        assert_eq!(s.check_at(&t, now).unwrap().station, "BB-01");
        // Used every 50 s it stays alive past the idle time, but not past the maximum age.
        assert!(s.check_at(&t, now + Duration::from_secs(50)).is_some());
        assert!(s.check_at(&t, now + Duration::from_secs(100)).is_some());
        assert!(s.check_at(&t, now + Duration::from_secs(301)).is_none());

        let t = s.start(&user());
        assert!(s
            .check_at(&t, Instant::now() + Duration::from_secs(61))
            .is_none());
        let t = s.start(&user());
        assert!(s.end(&t));
        assert!(s.check(&t).is_none());
        assert!(s.check("tls_forged").is_none());
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
