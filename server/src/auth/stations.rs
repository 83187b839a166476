//! Stations: the code records, people and devices are scoped by, with the
//! name and island people know them by. Admins at HQ manage them; an
//! instance always knows its own station and HQ.

use super::users::{station_code, UserError, HQ};
use serde::{Deserialize, Serialize};
use tideline_sync::store::{Commit, StateWrite};
use tideline_sync::{DocStore, StoreError};

const STATION_PREFIX: &[u8] = b"auth/station/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    pub code: String,
    pub name: String,
    pub island: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error(transparent)]
    Code(#[from] UserError),
    #[error("a station's name and island are 1 to 80 characters")]
    BadText,
    #[error("station {0} already exists")]
    Exists(String),
    #[error("there is no station {0}; an admin at HQ creates it first")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key(code: &str) -> Vec<u8> {
    [STATION_PREFIX, code.as_bytes()].concat()
}

pub fn list(store: &dyn DocStore) -> Result<Vec<Station>, StoreError> {
    store
        .scan_state(STATION_PREFIX)?
        .into_iter()
        .map(|(_, b)| serde_json::from_slice(&b).map_err(|_| StoreError::Corrupt("station".into())))
        .collect()
}

pub fn create(
    store: &dyn DocStore,
    code: &str,
    name: &str,
    island: &str,
) -> Result<Station, StationError> {
    let code = station_code(code)?;
    let text_ok = |t: &str| (1..=80).contains(&t.trim().chars().count());
    if !text_ok(name) || !text_ok(island) {
        return Err(StationError::BadText);
    }
    if code == HQ || store.get_state(&key(&code))?.is_some() {
        return Err(StationError::Exists(code));
    }
    let station = Station {
        code,
        name: name.trim().to_string(),
        island: island.trim().to_string(),
    };
    let bytes = serde_json::to_vec(&station).map_err(|e| StoreError::Io(e.to_string()))?;
    store.commit(Commit {
        records: Vec::new(),
        state: vec![StateWrite {
            key: key(&station.code),
            value: Some(bytes),
        }],
    })?;
    Ok(station)
}

/// Check that people or devices may be attached to `code` here: HQ, this
/// instance's own station, or a station an admin created.
pub fn check_known(store: &dyn DocStore, own: &str, code: &str) -> Result<(), StationError> {
    if code == HQ || code == own || store.get_state(&key(code))?.is_some() {
        Ok(())
    } else {
        Err(StationError::Unknown(code.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tideline_sync::MemoryStore;

    #[test]
    fn stations_are_created_once_and_known_after() {
        let store = MemoryStore::default();
        assert!(check_known(&store, "HQ", "BB-01").is_err());
        assert!(check_known(&store, "HQ", "HQ").is_ok());
        assert!(check_known(&store, "LC-01", "LC-01").is_ok());
        create(&store, "BB-01", "Bridgetown", "Barbados").unwrap();
        assert!(check_known(&store, "HQ", "BB-01").is_ok());
        assert!(matches!(
            create(&store, "BB-01", "Again", "Barbados"),
            Err(StationError::Exists(_))
        ));
        assert!(matches!(
            create(&store, "HQ", "x", "y"),
            Err(StationError::Exists(_))
        ));
        assert!(matches!(
            create(&store, "bb 02", "x", "y"),
            Err(StationError::Code(_))
        ));
        assert!(matches!(
            create(&store, "BB-02", "", "y"),
            Err(StationError::BadText)
        ));
        assert_eq!(list(&store).unwrap().len(), 1);
    }
}
