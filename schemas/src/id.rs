//! Record ids: UUIDv7, so ids sort by creation time and the change feed and listings can
//! order by id without a separate timestamp index.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id of a record. Serialized as the hyphenated lowercase string in every serde
/// format, binary ones included, so that ids read the same in JSON, logs and sync payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(#[serde(with = "hyphenated")] Uuid);

/// A string that is not a hyphenated UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid record id: {0:?}")]
pub struct InvalidRecordId(String);

impl InvalidRecordId {
    /// The refused input, cut to a length that is safe to log.
    pub fn input(&self) -> &str {
        &self.0
    }
}

impl RecordId {
    /// A fresh, time-ordered id: later calls in this process give greater ids.
    // No Default: a default that silently mints a new id each time would surprise.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        RecordId(Uuid::now_v7())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        RecordId(Uuid::from_bytes(bytes))
    }

    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for RecordId {
    fn from(uuid: Uuid) -> Self {
        RecordId(uuid)
    }
}

impl From<RecordId> for Uuid {
    fn from(id: RecordId) -> Self {
        id.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for RecordId {
    type Err = InvalidRecordId;

    /// Accepts only the hyphenated form (either case), so that one record has one
    /// spelling in URLs.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            const MAX: usize = 64;
            InvalidRecordId(s.chars().take(MAX).collect())
        };
        if s.len() != 36 {
            return Err(invalid());
        }
        Uuid::try_parse(s).map(RecordId).map_err(|_| invalid())
    }
}

mod hyphenated {
    use super::RecordId;
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(uuid: &Uuid, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&uuid.hyphenated())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Uuid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a record id (a hyphenated UUID)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Uuid, E> {
                s.parse::<RecordId>().map(|id| id.uuid()).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v7_and_time_ordered() {
        let ids: Vec<RecordId> = (0..1000).map(|_| RecordId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids[0].uuid().get_version_num(), 7);
        // Byte order agrees with id order, which is what sorted stores rely on.
        assert!(ids.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
    }

    #[test]
    fn display_and_parse_round_trip() {
        let id = RecordId::new();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(s.parse::<RecordId>().unwrap(), id);
        assert_eq!(s.to_uppercase().parse::<RecordId>().unwrap(), id);
        assert_eq!(RecordId::from_bytes(*id.as_bytes()), id);
        assert_eq!(RecordId::from(id.uuid()), id);
    }

    #[test]
    fn parse_refuses_garbage_and_other_spellings() {
        let id = RecordId::new();
        for bad in [
            String::new(),
            "not-a-uuid".to_string(),
            id.uuid().simple().to_string(),
            id.uuid().braced().to_string(),
            id.uuid().urn().to_string(),
            format!("{id}x"),
            "0191d6b2-7e3a-7c1e-9a2b-3c4d5e6f7g80".to_string(),
            "é".repeat(18),
        ] {
            assert!(bad.parse::<RecordId>().is_err(), "{bad:?}");
        }
        let err = "nope".parse::<RecordId>().unwrap_err();
        assert_eq!(err.to_string(), "not a valid record id: \"nope\"");
        assert_eq!(err.input(), "nope");
        let long = "x".repeat(100_000).parse::<RecordId>().unwrap_err();
        assert_eq!(long.input().len(), 64);
    }

    #[test]
    fn serde_uses_the_hyphenated_string() {
        let id: RecordId = "0191d6b2-7e3a-7c1e-9a2b-3c4d5e6f7a80".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0191d6b2-7e3a-7c1e-9a2b-3c4d5e6f7a80\"");
        assert_eq!(serde_json::from_str::<RecordId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RecordId>("\"nope\"").is_err());
        assert!(serde_json::from_str::<RecordId>("42").is_err());
        let err = serde_json::from_str::<RecordId>("\"nope\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid record id"), "{err}");
    }
}
