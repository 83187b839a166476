//! `tideline sync` (now, or its status) and `tideline enroll`: this
//! instance and its upstream.

use super::common::{human_bytes, open_existing, open_offline};
use crate::auth::devices;
use crate::config::{Overrides, Settings};
use crate::upstream::{http_client, load_ca, status_json, sync_and_record};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};

/// Sync with the upstream now (with a progress bar), or show sync status.
#[derive(Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    command: Option<SyncCommand>,
    /// URL of the upstream instance (or `upstream` in the config file).
    #[arg(long, env = "TIDELINE_UPSTREAM")]
    upstream: Option<String>,
    /// Change bytes per exchange, in KiB [default: sync_page_kib, 1024].
    /// Smaller pages lose less to a cut link and cost more round trips.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=8192))]
    page_kib: Option<u64>,
}

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Last attempt, last success, last error, pending local changes, upstream seq.
    Status,
}

/// Enrol this instance with its upstream, using a one-time code from the upstream's admin.
#[derive(Args)]
pub struct EnrollArgs {
    /// URL of the upstream instance (or `upstream` in the config file).
    #[arg(long, env = "TIDELINE_UPSTREAM")]
    upstream: Option<String>,
    #[arg(long)]
    code: String,
    /// What people call this boat or station ("Kestrel"): the upstream
    /// shows it wherever this device appears.
    #[arg(long)]
    name: Option<String>,
}

impl SyncArgs {
    pub(super) fn apply(&self, over: &mut Overrides) {
        over.upstream = self.upstream.clone();
        over.sync_page_kib = self.page_kib;
    }
}

impl EnrollArgs {
    pub(super) fn apply(&self, over: &mut Overrides) {
        over.upstream = self.upstream.clone();
    }
}

pub(super) fn sync(args: SyncArgs, settings: &Settings) -> anyhow::Result<()> {
    match args.command {
        None => sync_now(settings, settings.sync_page_bytes),
        Some(SyncCommand::Status) => sync_status(settings),
    }
}

pub(super) fn enroll(args: EnrollArgs, settings: &Settings) -> anyhow::Result<()> {
    let Some(upstream) = settings.upstream.clone() else {
        bail!("no upstream: pass --upstream URL or set `upstream` in the config file");
    };
    let records = open_offline(settings)?;
    let ca = settings.upstream_ca.as_deref().map(load_ca).transpose()?;
    // A directory never given a station takes the code's, so the
    // command an admin is shown works as it is.
    let adopt = !settings.station_given && crate::data_dir::can_adopt_station(&records)?;
    let c = crate::upstream::enroll(
        &records,
        &settings.data_dir,
        &upstream,
        &args.code,
        &http_client(ca.as_ref()),
        adopt,
        args.name.as_deref(),
    )?;
    if adopt && c.station != records.station() {
        crate::data_dir::adopt_station(&records, &c.station)?;
    }
    println!(
        "enrolled with {} as a device of station {}; `tideline sync` and `serve --upstream` now sync with it",
        c.upstream, c.station
    );
    Ok(())
}

fn sync_now(settings: &Settings, page_bytes: u64) -> anyhow::Result<()> {
    let records = open_existing(settings)?;
    // The upstream given, else the one this directory enrolled with.
    let enrolled = devices::credential(records.store().as_ref())?.map(|c| c.upstream);
    let Some(upstream) = settings.upstream.clone().or(enrolled) else {
        bail!(
            "this data directory is not enrolled with an upstream: run `tideline enroll \
             --upstream URL --code CODE` with a code from the upstream's admin"
        );
    };
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("syncing with {upstream}"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let ca = settings.upstream_ca.as_deref().map(load_ca).transpose()?;
    let http = http_client(ca.as_ref());
    let blobs = tideline_sync::blobs::BlobStore::open(&settings.data_dir)?;
    let fetch = crate::upstream::FileFetch {
        eager_forms: settings.attachments.eager_forms.clone(),
        requested: Vec::new(),
        max_bytes: settings.attachments.max_bytes as u64,
    };
    let key = crate::auth::InstanceKey::load(&settings.data_dir)?;
    let result = sync_and_record(
        &records,
        &key,
        &blobs,
        &upstream,
        &http,
        page_bytes,
        &fetch,
        |o| {
            bar.set_message(format!(
                "pushed {} · pulled {} · sent {} · received {} · {} round trip(s)",
                o.pushed,
                o.pulled,
                human_bytes(o.bytes_sent as u64 + o.file_bytes_sent),
                human_bytes(o.bytes_received as u64 + o.file_bytes_received),
                o.round_trips
            ));
        },
    );
    bar.finish_and_clear();
    let o = result.context(
        "sync stopped; what was exchanged before the failure is kept, the rest goes next time, \
         and local records stay usable offline",
    )?;
    println!(
        "synced with {upstream}: pushed {} record(s) and {} file(s), pulled {} record(s) and {} file(s), sent {}, received {}, {} round trip(s) in {:.1} s{}",
        o.pushed,
        o.files_sent,
        o.pulled,
        o.files_received,
        human_bytes(o.bytes_sent as u64 + o.file_bytes_sent),
        human_bytes(o.bytes_received as u64 + o.file_bytes_received),
        o.round_trips,
        o.duration_ms as f64 / 1000.0,
        if o.rejected > 0 {
            format!(" ({} refused by the upstream, see the log)", o.rejected)
        } else {
            String::new()
        }
    );
    Ok(())
}

fn sync_status(settings: &Settings) -> anyhow::Result<()> {
    let records = open_existing(settings)?;
    let status = status_json(&records, settings.upstream.as_deref(), false);
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}
