//! `tideline backup`, `restore`, `check` and `attachments gc`: looking
//! after a data directory as a whole.

use super::common::{human_bytes, open_existing, open_offline, parse_duration};
use crate::auth::audit;
use crate::config::Settings;
use crate::data_dir::{open_records, SharedRecords};
use anyhow::{bail, Context};
use clap::Subcommand;
use std::path::Path;
use tideline_sync::StoreError;

#[derive(Subcommand)]
pub enum AttachmentsCommand {
    /// Remove files no record references, untouched for the grace period
    /// (uploads whose record never arrived, or never synced). Referenced
    /// files are never removed.
    Gc {
        /// How long an unreferenced file is kept: 90m, 24h, 7d [default: 7d].
        #[arg(long, default_value = "7d")]
        grace: String,
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(super) fn attachments(cmd: AttachmentsCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        AttachmentsCommand::Gc { grace, dry_run } => {
            let records = open_offline(settings)?;
            collect_files(&records, &settings.data_dir, &grace, dry_run)
        }
    }
}

/// Write a backup of the data directory to `out`.
pub(super) fn backup(settings: &Settings, out: &Path) -> anyhow::Result<()> {
    let records = open_records(settings).map_err(|e| match e.downcast_ref::<StoreError>() {
        Some(StoreError::InUse(dir)) => anyhow::anyhow!(
            "{} is in use by a running `tideline serve`: ask it instead, as an admin: \
                 curl -H \"Authorization: Bearer TOKEN\" -o {} http://HOST:PORT/api/v1/backup",
            dir.display(),
            out.display()
        ),
        _ => e,
    })?;
    // Written beside the target and renamed: no half backup under its name.
    let tmp = out.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let contents = crate::backup::write(records.store().as_ref(), &settings.data_dir, &mut w)?;
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?
        .sync_all()?;
    std::fs::rename(&tmp, out)?;
    println!(
        "wrote {}: {} store entries, {} file(s)",
        out.display(),
        contents.entries,
        contents.files
    );
    Ok(())
}

/// Restore a backup into the (empty) data directory.
pub(super) fn restore(settings: &Settings, input: &Path) -> anyhow::Result<()> {
    let contents = crate::backup::restore(input, &settings.data_dir)?;
    println!(
        "restored {} into {}: {} store entries, {} file(s); check it with `tideline check`",
        input.display(),
        settings.data_dir.display(),
        contents.entries,
        contents.files
    );
    Ok(())
}

pub(super) fn check_command(settings: &Settings) -> anyhow::Result<()> {
    let records = open_existing(settings)?;
    check(&records, &settings.data_dir)
}

fn collect_files(
    records: &SharedRecords,
    data: &Path,
    grace: &str,
    dry_run: bool,
) -> anyhow::Result<()> {
    let grace = parse_duration(grace)?;
    let blobs = tideline_sync::blobs::BlobStore::open(data)?;
    let referenced: std::collections::HashSet<_> =
        records.referenced_files(None)?.into_iter().collect();
    let before = std::time::SystemTime::now() - grace;
    let removed = blobs.collect(&referenced, before, dry_run)?;
    let bytes: u64 = removed.iter().map(|(_, n, _)| n).sum();
    for (hash, size, complete) in &removed {
        println!(
            "{} {hash} ({size} bytes{})",
            if dry_run { "would remove" } else { "removed" },
            if *complete { "" } else { ", unfinished upload" }
        );
    }
    println!(
        "{} {} unreferenced file(s), {}; {} referenced file(s) kept",
        if dry_run { "would remove" } else { "removed" },
        removed.len(),
        human_bytes(bytes),
        referenced.len()
    );
    Ok(())
}

fn check(records: &SharedRecords, data: &Path) -> anyhow::Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let (count, found) = records.check()?;
    println!("records: {count} checked");
    problems.extend(found);
    let blobs = tideline_sync::blobs::BlobStore::open(data)?;
    let (files, found) = blobs.verify()?;
    println!("attachments: {files} file(s) checked");
    problems.extend(found);
    let (entries, found) = audit::verify(records.store().as_ref())?;
    println!("audit log: {entries} entries checked");
    problems.extend(
        found
            .into_iter()
            .map(|p| format!("audit entry {}: {}", p.seq, p.message)),
    );
    if problems.is_empty() {
        println!("no problems found");
        return Ok(());
    }
    for p in &problems {
        println!("PROBLEM {p}");
    }
    bail!(
        "{} problem(s) in {}; nothing was changed",
        problems.len(),
        data.display()
    )
}
