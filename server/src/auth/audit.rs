//! The audit log: append-only and hash-chained. Entry n carries the hash of
//! entry n-1, and its own hash covers every field including that link, so
//! altering, deleting or reordering any entry breaks the chain at that entry,
//! and `verify` names it. The head (last seq and hash) is stored beside the
//! entries, so cutting entries off the end shows too.
//!
//! Someone with write access to the data directory could rewrite the whole
//! chain consistently from some entry on. Each sync anchors the chain
//! elsewhere: the request carries the head, signed, and the upstream keeps
//! it (`audit/anchor/<device><seq>`) and compares the downstream's entry at
//! its last acknowledged anchor on the next sync; the downstream keeps the
//! heads its upstream acknowledged, which `verify_anchors` compares
//! (docs/EVIDENCE.md).
//!
//! Entries live in the store's state space (`audit/e/<seq>` and `audit/head`),
//! so they commit atomically with nothing else and need no storage of their own.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use tideline_sync::evidence::AuditHead;
use tideline_sync::store::{Commit, StateWrite};
use tideline_sync::{DocStore, StoreError};

const ENTRY_PREFIX: &[u8] = b"audit/e/";
const HEAD_KEY: &[u8] = b"audit/head";
const ANCHOR_PREFIX: &[u8] = b"audit/anchor/";
const ANCHOR_LATEST_PREFIX: &[u8] = b"audit/anchor-latest/";

/// One audited event, as stored and as `GET /api/v1/audit` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// Who: `user:<name>`, `device:<id>`, or `system`.
    pub actor: String,
    /// What, dotted: `login.success`, `record.create`, `user.create`, ...
    pub action: String,
    /// Which record, user or device it concerns, if any.
    pub target: Option<String>,
    /// Small facts about the event (never record contents or credentials).
    pub details: Json,
    /// Hex SHA-256 of the previous entry (64 zeros for the first).
    pub prev: String,
    /// Hex SHA-256 of this entry's other fields.
    pub hash: String,
}

/// An event to append; the log fills in seq, time and the chain.
#[derive(Debug, Clone)]
pub struct Event {
    pub actor: String,
    pub action: &'static str,
    pub target: Option<String>,
    pub details: Json,
}

impl Event {
    pub fn new(actor: impl Into<String>, action: &'static str) -> Self {
        Event {
            actor: actor.into(),
            action,
            target: None,
            details: Json::Null,
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn details(mut self, details: Json) -> Self {
        self.details = details;
        self
    }
}

#[derive(Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

/// The fields a hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    action: &'a str,
    target: &'a Option<String>,
    details: &'a Json,
    prev: &'a str,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn entry_hash(e: &Entry) -> String {
    let hashed = Hashed {
        seq: e.seq,
        time: &e.time,
        actor: &e.actor,
        action: &e.action,
        target: &e.target,
        details: &e.details,
        prev: &e.prev,
    };
    // serde_json writes struct fields in declaration order and object keys of
    // `details` in sorted order (no preserve_order feature): stable bytes.
    let bytes = serde_json::to_vec(&hashed).unwrap_or_default();
    hex(&Sha256::digest(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_key(seq: u64) -> Vec<u8> {
    let mut k = ENTRY_PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Appends entries to the chain; one writer at a time.
#[derive(Default)]
pub struct AuditLog {
    append_lock: Mutex<()>,
}

impl AuditLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append an event. With `durable`, the entry is on disk when this returns
    /// (user, device and enrollment changes); otherwise it reaches the disk
    /// with the next flush, so reads are not slowed by a disk flush each
    /// (a crash may lose the last moment's view and login entries, never
    /// leave the chain broken: entry and head are one atomic write).
    pub fn append(
        &self,
        store: &dyn DocStore,
        event: Event,
        durable: bool,
    ) -> Result<Entry, StoreError> {
        let _guard = self.append_lock.lock().unwrap_or_else(|p| p.into_inner());
        let head = match store.get_state(HEAD_KEY)? {
            Some(bytes) => serde_json::from_slice::<Head>(&bytes)
                .map_err(|_| StoreError::Corrupt("audit head".into()))?,
            None => Head {
                seq: 0,
                hash: GENESIS.to_string(),
            },
        };
        let mut entry = Entry {
            seq: head.seq + 1,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            actor: event.actor,
            action: event.action.to_string(),
            target: event.target,
            details: event.details,
            prev: head.hash,
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        let new_head = Head {
            seq: entry.seq,
            hash: entry.hash.clone(),
        };
        let writes = vec![
            StateWrite {
                key: entry_key(entry.seq),
                value: Some(to_json(&entry)?),
            },
            StateWrite {
                key: HEAD_KEY.to_vec(),
                value: Some(to_json(&new_head)?),
            },
        ];
        if durable {
            store.commit(Commit {
                records: Vec::new(),
                state: writes,
            })?;
        } else {
            store.put_state_lazy(writes)?;
        }
        Ok(entry)
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Io(e.to_string()))
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// Only entries with seq greater than this.
    pub after: u64,
    pub limit: usize,
}

/// Entries matching `q`, oldest first.
pub fn list(store: &dyn DocStore, q: &Query) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    for (_, bytes) in store.scan_state(ENTRY_PREFIX)? {
        let Ok(e) = serde_json::from_slice::<Entry>(&bytes) else {
            continue;
        };
        let keep = e.seq > q.after
            && q.actor.as_ref().is_none_or(|a| &e.actor == a)
            && q.action
                .as_ref()
                .is_none_or(|a| e.action.starts_with(a.as_str()))
            && q.target
                .as_ref()
                .is_none_or(|t| e.target.as_ref() == Some(t));
        if keep {
            out.push(e);
            if out.len() >= q.limit {
                break;
            }
        }
    }
    Ok(out)
}

/// One break in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The entry where the chain breaks (for a missing tail, the head's seq).
    pub seq: u64,
    pub message: String,
}

/// Walk the whole chain and report every entry that does not fit: unreadable,
/// altered (its hash no longer matches), out of sequence (entries deleted or
/// inserted), linked to the wrong predecessor, or a head that does not match
/// the last entry (entries cut off the end), or an entry that no longer
/// matches a head the upstream acknowledged (a consistent rewrite). Empty
/// when the log is intact.
pub fn verify(store: &dyn DocStore) -> Result<(u64, Vec<Problem>), StoreError> {
    let mut problems = Vec::new();
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS.to_string();
    let mut count = 0u64;
    for (key, bytes) in store.scan_state(ENTRY_PREFIX)? {
        count += 1;
        let key_seq = key[ENTRY_PREFIX.len()..]
            .try_into()
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let entry = match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) => e,
            Err(_) => {
                problems.push(Problem {
                    seq: key_seq,
                    message: "the entry is unreadable".into(),
                });
                expected_seq = key_seq + 1;
                prev_hash = String::new();
                continue;
            }
        };
        if entry.seq != key_seq {
            problems.push(Problem {
                seq: key_seq,
                message: format!("stored at position {key_seq} but says it is {}", entry.seq),
            });
        }
        if key_seq != expected_seq {
            problems.push(Problem {
                seq: key_seq,
                message: format!(
                    "entries {expected_seq} to {} are missing",
                    key_seq.saturating_sub(1)
                ),
            });
        }
        if entry_hash(&entry) != entry.hash {
            problems.push(Problem {
                seq: key_seq,
                message: "the entry was altered: its hash does not match its contents".into(),
            });
        }
        if !prev_hash.is_empty() && entry.prev != prev_hash {
            problems.push(Problem {
                seq: key_seq,
                message: "the entry does not follow the one before it (the chain is broken here)"
                    .into(),
            });
        }
        expected_seq = key_seq + 1;
        prev_hash = entry.hash;
    }
    let last = expected_seq - 1;
    match store.get_state(HEAD_KEY)? {
        Some(bytes) => match serde_json::from_slice::<Head>(&bytes) {
            Ok(head) if head.seq == last && (count == 0 || head.hash == prev_hash) => {}
            Ok(head) if head.seq > last => problems.push(Problem {
                seq: head.seq,
                message: format!(
                    "the log ends at entry {last} but its head says {}: entries were cut off the end",
                    head.seq
                ),
            }),
            Ok(head) => problems.push(Problem {
                seq: head.seq,
                message: "the head does not match the last entry".into(),
            }),
            Err(_) => problems.push(Problem {
                seq: last,
                message: "the head is unreadable".into(),
            }),
        },
        None if count > 0 => problems.push(Problem {
            seq: last,
            message: "the head is missing".into(),
        }),
        None => {}
    }
    // A chain rewritten consistently passes every check above; the heads
    // the upstream acknowledged do not move with it.
    let anchors = tideline_sync::engine::acknowledged_anchors(store)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    problems.extend(verify_anchors(store, &anchors)?);
    Ok((count, problems))
}

/// A SHA-256 in lower-case hex, as entries hold their hashes.
fn unhex32(text: &str) -> Option<[u8; 32]> {
    text.parse::<tideline_sync::blobs::BlobHash>()
        .ok()
        .map(|h| *h.as_bytes())
}

/// The chain's head as sync anchors it: zeros for an empty log.
pub fn head(store: &dyn DocStore) -> Result<AuditHead, StoreError> {
    let Some(bytes) = store.get_state(HEAD_KEY)? else {
        return Ok(AuditHead::default());
    };
    let head: Head =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::Corrupt("audit head".into()))?;
    Ok(AuditHead {
        seq: head.seq,
        hash: unhex32(&head.hash).ok_or_else(|| StoreError::Corrupt("audit head".into()))?,
    })
}

/// The hash entry `seq` holds now, if it is there and readable.
pub fn hash_at(store: &dyn DocStore, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
    Ok(store
        .get_state(&entry_key(seq))?
        .and_then(|bytes| serde_json::from_slice::<Entry>(&bytes).ok())
        .and_then(|e| unhex32(&e.hash)))
}

/// Compare the chain with the heads its upstream acknowledged (oldest
/// first): the first that no longer matches names where a rewrite shows.
pub fn verify_anchors(
    store: &dyn DocStore,
    anchors: &[AuditHead],
) -> Result<Option<Problem>, StoreError> {
    let mut last_good = 0;
    for anchor in anchors {
        if hash_at(store, anchor.seq)? == Some(anchor.hash) {
            last_good = anchor.seq;
            continue;
        }
        return Ok(Some(Problem {
            seq: anchor.seq,
            message: format!(
                "the entry is not the one the upstream was shown at a sync: the chain was \
                 rewritten from entry {} on at the latest (entry {last_good}, anchored \
                 earlier, still matches)",
                last_good + 1
            ),
        }));
    }
    Ok(None)
}

/// The latest head kept for a device: read on every sync, so it is not
/// found by scanning every head kept.
fn latest_anchor_key(device: &uuid::Uuid) -> Vec<u8> {
    let mut k = ANCHOR_LATEST_PREFIX.to_vec();
    k.extend_from_slice(device.as_bytes());
    k
}

fn anchor_key(device: &uuid::Uuid, seq: u64) -> Vec<u8> {
    let mut k = ANCHOR_PREFIX.to_vec();
    k.extend_from_slice(device.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// What an upstream finds wrong with a downstream's audit chain, from what
/// its request says against the anchors kept from earlier syncs.
pub fn anchor_finding(
    store: &dyn DocStore,
    device: &uuid::Uuid,
    head: &AuditHead,
    check: Option<(u64, [u8; 16])>,
) -> Result<Option<String>, StoreError> {
    let Some(latest) = store.get_state(&latest_anchor_key(device))? else {
        return Ok(None);
    };
    let latest = latest
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("audit anchor".into()))?;
    if head.seq < latest {
        return Ok(Some(format!(
            "its audit log ends at entry {}, but it reached entry {latest} at an earlier sync",
            head.seq
        )));
    }
    // A downstream that never had an answer has nothing to compare; one
    // whose kept heads were deleted with the rewrite is caught only if the
    // rewrite shortened the chain (docs/EVIDENCE.md).
    let Some((seq, hash)) = check else {
        return Ok(None);
    };
    Ok(match store.get_state(&anchor_key(device, seq))? {
        Some(kept) if kept.get(..16) != Some(&hash[..]) => Some(format!(
            "its audit entry {seq} is not the one it was at an earlier sync: its chain was \
             rewritten"
        )),
        _ => None,
    })
}

/// Keep a downstream's audit head from a verified request.
pub fn keep_anchor(
    store: &dyn DocStore,
    device: &uuid::Uuid,
    head: &AuditHead,
) -> Result<(), StoreError> {
    if head.seq == 0 {
        return Ok(());
    }
    store.put_state_lazy(vec![
        StateWrite {
            key: anchor_key(device, head.seq),
            value: Some(head.hash.to_vec()),
        },
        StateWrite {
            key: latest_anchor_key(device),
            value: Some(head.seq.to_be_bytes().to_vec()),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tideline_sync::MemoryStore;

    fn log_of(n: usize) -> (MemoryStore, AuditLog) {
        let store = MemoryStore::default();
        let log = AuditLog::new();
        for i in 0..n {
            log.append(
                &store,
                Event::new("user:alice", "record.view")
                    .target(format!("r{i}"))
                    .details(json!({"i": i})),
                i % 2 == 0,
            )
            .unwrap();
        }
        (store, log)
    }

    fn put(store: &MemoryStore, key: Vec<u8>, value: Option<Vec<u8>>) {
        store
            .put_state_lazy(vec![StateWrite { key, value }])
            .unwrap();
    }

    #[test]
    fn an_intact_log_verifies_and_lists_with_filters() {
        let (store, log) = log_of(5);
        log.append(
            &store,
            Event::new("system", "user.create").target("bob"),
            true,
        )
        .unwrap();
        assert_eq!(verify(&store).unwrap(), (6, vec![]));
        let all = list(
            &store,
            &Query {
                limit: 100,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].prev, GENESIS);
        assert_eq!(all[1].prev, all[0].hash);
        let users = list(
            &store,
            &Query {
                action: Some("user.".into()),
                limit: 100,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].target.as_deref(), Some("bob"));
    }

    #[test]
    fn an_altered_entry_is_named() {
        let (store, _) = log_of(5);
        let mut e: Entry =
            serde_json::from_slice(&store.get_state(&entry_key(3)).unwrap().unwrap()).unwrap();
        e.actor = "user:mallory".into();
        put(&store, entry_key(3), Some(serde_json::to_vec(&e).unwrap()));
        let (_, problems) = verify(&store).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].seq, 3);
        assert!(problems[0].message.contains("altered"));
    }

    #[test]
    fn an_entry_rehashed_after_altering_still_breaks_the_next_link() {
        let (store, _) = log_of(5);
        let mut e: Entry =
            serde_json::from_slice(&store.get_state(&entry_key(2)).unwrap().unwrap()).unwrap();
        e.details = json!({"i": 99});
        e.hash = entry_hash(&e);
        put(&store, entry_key(2), Some(serde_json::to_vec(&e).unwrap()));
        let (_, problems) = verify(&store).unwrap();
        assert_eq!(problems.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn deleted_entries_are_found_in_the_middle_and_at_the_end() {
        let (store, _) = log_of(6);
        put(&store, entry_key(3), None);
        let (_, problems) = verify(&store).unwrap();
        assert!(problems
            .iter()
            .any(|p| p.seq == 4 && p.message.contains("missing")));

        let (store, _) = log_of(6);
        put(&store, entry_key(6), None);
        let (_, problems) = verify(&store).unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("cut off the end")),
            "{problems:?}"
        );
    }

    #[test]
    fn garbage_in_an_entry_is_a_problem_not_a_panic() {
        let (store, _) = log_of(3);
        put(&store, entry_key(2), Some(b"{not json".to_vec()));
        let (_, problems) = verify(&store).unwrap();
        assert!(problems
            .iter()
            .any(|p| p.seq == 2 && p.message.contains("unreadable")));
    }
}
