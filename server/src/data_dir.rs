//! A data directory and its rules: the store opened on it, the station it
//! belongs to, and the format version it is written in (checked before
//! anything is written, older ones migrated). Everything that opens a data
//! directory — `serve`, every command, the tests — comes through here.

use crate::auth::InstanceKey;
use crate::config::Settings;
use std::sync::Arc;
use tideline_schemas::FormRegistry;
use tideline_sync::{DocStore, Records, SledStore};

/// The record service as the server holds it; any [`DocStore`] fits behind it.
pub type SharedRecords = Arc<Records<Arc<dyn DocStore>>>;

const STATION_KEY: &str = "station";

/// Open the record service on the sled store in `settings.data_dir`.
///
/// A data directory belongs to the station it was first used with: commands
/// that do not name a station use it, and naming a different one is refused,
/// so a `tideline sync` without `--station` cannot push as the wrong station.
pub fn open_records(settings: &Settings) -> anyhow::Result<SharedRecords> {
    let store = SledStore::open_with_cache(&settings.data_dir, settings.cache_bytes)?;
    // Before anything is written: a directory from a newer binary is left alone.
    check_format(&store, &settings.data_dir)?;
    let station = match store.get_meta(STATION_KEY)? {
        Some(bytes) => {
            let stored = String::from_utf8_lossy(&bytes).into_owned();
            if settings.station_given && stored != settings.station {
                anyhow::bail!(
                    "{} belongs to station {stored}, not {}; use the station it was set up with",
                    settings.data_dir.display(),
                    settings.station
                );
            }
            stored
        }
        None => {
            store.put_meta(STATION_KEY, settings.station.as_bytes())?;
            settings.station.clone()
        }
    };
    let store: Arc<dyn DocStore> = Arc::new(store);
    let records = Records::open(store, FormRegistry::builtin(), &station)?;
    // The key pair is made with the instance, on its first start.
    InstanceKey::load_or_create(&settings.data_dir, records.identity().device_id)?;
    Ok(Arc::new(records))
}

/// Whether a data directory can still take a station from an enrolment
/// code: it was never given one (it is `LOCAL`, the default) and holds no
/// records that would be left under the old name.
pub fn can_adopt_station(records: &SharedRecords) -> anyhow::Result<bool> {
    Ok(records.station() == crate::config::DEFAULT_STATION && records.store().count()? == 0)
}

/// Make `station` the data directory's own (after an enrolment for it).
pub fn adopt_station(records: &SharedRecords, station: &str) -> anyhow::Result<()> {
    records.store().put_meta(STATION_KEY, station.as_bytes())?;
    Ok(())
}

/// The layout of a data directory this binary writes. Raise it with any change
/// an older binary would misread, and add the step up from the previous one to
/// [`migrate`].
///
/// - 1: records, views, summaries and the feed in sled (docs/ARCHITECTURE.md).
/// - 2: every snapshot is a plain Automerge document (no DEFLATEd column),
///   so sync can send a record as it is stored.
pub const DATA_FORMAT: u32 = 2;
const FORMAT_KEY: &str = "format_version";

/// Refuse a data directory written by a newer binary; bring an older one up
/// to [`DATA_FORMAT`]; stamp a new one.
fn check_format(store: &SledStore, dir: &std::path::Path) -> anyhow::Result<()> {
    let found = match store.get_meta(FORMAT_KEY)? {
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has an unreadable format version {:?}; it may be damaged. Nothing was changed.",
                    dir.display(),
                    String::from_utf8_lossy(&bytes)
                )
            })?,
        None if is_new(store)? => DATA_FORMAT,
        // Written before directories carried a version.
        None => 0,
    };
    if found > DATA_FORMAT {
        anyhow::bail!(
            "{} was written by a newer Tideline (data format {found}; this binary reads formats \
             up to {DATA_FORMAT}). Run that newer version, or one after it; nothing was changed.",
            dir.display()
        );
    }
    for from in found..DATA_FORMAT {
        migrate(store, from)?;
        tracing::info!(from, to = from + 1, "data directory migrated");
    }
    if store.get_meta(FORMAT_KEY)?.is_none() || found != DATA_FORMAT {
        store.put_meta(FORMAT_KEY, DATA_FORMAT.to_string().as_bytes())?;
    }
    Ok(())
}

/// Nothing has ever been stored here.
fn is_new(store: &SledStore) -> anyhow::Result<bool> {
    if store.get_meta(STATION_KEY)?.is_some() {
        return Ok(false);
    }
    let mut any = false;
    store.scan_summaries(&mut |_, _| {
        any = true;
        false
    })?;
    Ok(!any)
}

/// One step up from format `from`.
fn migrate(store: &SledStore, from: u32) -> anyhow::Result<()> {
    match from {
        // Format 0 is format 1 without the version: the layout is the same.
        0 => Ok(()),
        // DEFLATEd snapshots become plain ones; a document that does not
        // load stops the migration with its id, and nothing else changes.
        1 => {
            let rewritten = store.rewrite_documents(&mut |id, stored| {
                tideline_sync::records::plain_snapshot(stored)
                    .map_err(|e| tideline_sync::StoreError::Corrupt(format!("record {id}: {e}")))
            })?;
            tracing::info!(rewritten, "snapshots rewritten as plain documents");
            Ok(())
        }
        other => anyhow::bail!("no migration from data format {other}"),
    }
}
