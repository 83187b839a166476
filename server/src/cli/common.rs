//! What every command shares: opening the data directory (for reading
//! only, or to write while no server holds it), and durations as typed.

use crate::config::Settings;
use crate::data_dir::{open_records, SharedRecords};
use anyhow::bail;
use tideline_sync::StoreError;

/// Open an existing data directory for a command that only reads: a typo
/// in `--data` must say so, not create an empty store that looks like lost
/// records.
pub(super) fn open_existing(settings: &Settings) -> anyhow::Result<SharedRecords> {
    let dir = &settings.data_dir;
    let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
    if empty {
        bail!(
            "there is no Tideline data directory at {}; check --data (or TIDELINE_DATA_DIR).              Nothing was created.",
            dir.display()
        );
    }
    open_offline(settings)
}

pub(super) fn open_offline(settings: &Settings) -> anyhow::Result<SharedRecords> {
    open_records(settings).map_err(|e| match e.downcast_ref::<StoreError>() {
        Some(StoreError::InUse(dir)) => anyhow::anyhow!(
            "{} is in use by a running `tideline serve`; stop it first, or use its HTTP API \
             (for example: curl http://127.0.0.1:8080/api/v1/records). Nothing was changed.",
            dir.display()
        ),
        _ => e,
    })
}

/// `90m`, `24h`, `7d`.
pub(super) fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a duration like 90m, 24h or 7d"))?;
    let secs = match unit {
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("{text:?} is not a duration like 90m, 24h or 7d"),
    };
    if secs == 0 {
        bail!("{text:?} is no time at all");
    }
    Ok(std::time::Duration::from_secs(secs))
}

pub(super) fn human_bytes(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}
