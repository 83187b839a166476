//! The command line (docs/DESIGN.md §9): `serve`, `sync`, `record create|list|show`,
//! `export`, `identity`, `admin create-user`, `audit verify`.
//!
//! Commands other than `serve` open the data directory themselves. sled allows
//! one process per directory, so while `tideline serve` runs on it they stop
//! with a clear message (pointing at the HTTP API instead) and touch nothing.

use crate::auth::users::{self, Role, Username};
use crate::auth::{audit, AuditLog, Event, InstanceKey};
use crate::auth::{devices, stations};
use crate::config::{Overrides, Settings};
use crate::export::{repeat_tables, Exporter, Format};
use crate::startup::{open_records, Application, SharedRecords};
use crate::upstream::{http_client, load_ca, status_json, sync_and_record};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value as Json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tideline_sync::records::DEFAULT_LIMIT;
use tideline_sync::{Author, Filter, StoreError};

#[derive(Parser)]
#[command(
    name = "tideline",
    version,
    about = "Offline-first boarding reports that sync when a link appears"
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct GlobalArgs {
    /// TOML configuration file (see deploy/tideline.example.toml).
    #[arg(long, global = true, env = "TIDELINE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./tideline-data].
    #[arg(long = "data", global = true, env = "TIDELINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// This instance's station code [default: LOCAL].
    #[arg(long, global = true, env = "TIDELINE_STATION")]
    station: Option<String>,
    /// CA certificate (PEM) to trust for an https:// upstream, or the
    /// upstream's own certificate to pin it.
    #[arg(long, global = true, env = "TIDELINE_UPSTREAM_CA")]
    upstream_ca: Option<PathBuf>,
    /// Log lines as text, or as one JSON object per line for log shippers.
    #[arg(long, global = true, env = "TIDELINE_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server on the data directory.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "TIDELINE_LISTEN")]
        listen: Option<String>,
        /// URL of the upstream instance.
        #[arg(long, env = "TIDELINE_UPSTREAM")]
        upstream: Option<String>,
        /// Largest accepted request body in bytes [default: 1048576].
        #[arg(long, env = "TIDELINE_MAX_BODY_BYTES")]
        max_body_bytes: Option<usize>,
        /// Storage page cache in MiB [default: 32].
        #[arg(long, env = "TIDELINE_CACHE_MB")]
        cache_mb: Option<u64>,
        /// Seconds between syncs when nothing changes locally [default: 60].
        #[arg(long, env = "TIDELINE_SYNC_INTERVAL_SECS")]
        sync_interval_secs: Option<u64>,
        /// Do not sync in the background; only when asked (sync/now).
        #[arg(long)]
        no_auto_sync: bool,
        /// Change bytes per sync exchange, in KiB [default: 1024].
        #[arg(long, env = "TIDELINE_SYNC_PAGE_KIB")]
        sync_page_kib: Option<u64>,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, env = "TIDELINE_TLS_CERT")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, env = "TIDELINE_TLS_KEY")]
        tls_key: Option<PathBuf>,
    },
    /// Sync with the upstream now (with a progress bar), or show sync status.
    Sync {
        #[command(subcommand)]
        command: Option<SyncCommand>,
        /// URL of the upstream instance (or `upstream` in the config file).
        #[arg(long, env = "TIDELINE_UPSTREAM")]
        upstream: Option<String>,
        /// Change bytes per exchange, in KiB [default: sync_page_kib, 1024].
        /// Smaller pages lose less to a cut link and cost more round trips.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=8192))]
        page_kib: Option<u64>,
    },
    /// Create, list and show records.
    #[command(subcommand)]
    Record(RecordCommand),
    /// Print this instance's id and public key.
    Identity,
    /// Enrol this instance with its upstream, using a one-time code from the upstream's admin.
    Enroll {
        /// URL of the upstream instance (or `upstream` in the config file).
        #[arg(long, env = "TIDELINE_UPSTREAM")]
        upstream: Option<String>,
        #[arg(long)]
        code: String,
        /// What people call this boat or station ("Kestrel"): the upstream
        /// shows it wherever this device appears.
        #[arg(long)]
        name: Option<String>,
    },
    /// Manage people (works offline on the data directory).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write a backup of the data directory (records, files, key) to FILE.
    /// Works on a stopped instance; a running one answers
    /// `GET /api/v1/backup` (admins) with the same file.
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into the data directory given by --data, which must
    /// not exist yet or be empty.
    Restore {
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Check the whole data directory: every record loads and matches the
    /// change feed, every attachment matches its SHA-256, the audit log
    /// verifies. Exits non-zero with a list of problems; repairs nothing.
    Check,
    /// HTTPS for a boat's or station's LAN: a CA of this instance's own.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Attachment files.
    #[command(subcommand)]
    Attachments(AttachmentsCommand),
    /// Forms: list them, or publish a new version (at HQ).
    #[command(subcommand)]
    Form(FormCommand),
    /// Export records as JSON lines, CSV or GeoJSON, or as a zip archive with
    /// their files (`--format zip --out FILE`).
    Export {
        #[arg(long)]
        format: String,
        /// Write here instead of standard output. For CSV, each repeat's table
        /// is written beside it as FILE-stem.<repeat>.csv.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        form: Option<String>,
        #[arg(long = "filter-station")]
        filter_station: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// CSV to standard output: a repeat's table (crew, seizures) instead of the records.
        #[arg(long)]
        table: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user; the password is read from standard input.
    CreateUser {
        #[arg(long)]
        username: String,
        /// officer, supervisor, analyst or admin.
        #[arg(long)]
        role: String,
        /// The user's station, or HQ for all [default: this instance's station].
        #[arg(long = "user-station")]
        user_station: Option<String>,
    },
    /// Print a one-time code that enrols one downstream instance. The device's
    /// station is given with the global `--station CODE` (here it names the
    /// device's station, not this instance's).
    EnrollCode {
        /// boat or station.
        #[arg(long)]
        kind: String,
        /// How long the code stays valid: 90m, 24h, 7d [default: 24h].
        #[arg(long, default_value = "24h")]
        expires: String,
    },
    /// Revoke a device: its next sync is refused; its own data stays with it.
    Revoke { device: String },
    /// List enrolled devices.
    Devices,
    /// Create a station (at HQ): its code, name and island.
    CreateStation {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        island: String,
    },
}

#[derive(Subcommand)]
enum FormCommand {
    /// Every form and version this instance knows.
    List,
    /// Publish FILE (a form definition, JSON) as a new version of its form.
    /// New records use it; existing records keep their version. Stations and
    /// boats receive it at their next sync.
    Publish { file: PathBuf },
}

#[derive(Subcommand)]
enum AttachmentsCommand {
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit non-zero and name every altered or missing entry.
    Verify,
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Last attempt, last success, last error, pending local changes, upstream seq.
    Status,
}

#[derive(Subcommand)]
enum RecordCommand {
    /// Create a draft record from a JSON object of fields.
    Create {
        #[arg(long)]
        form: String,
        /// File with the fields as a JSON object, or - for standard input.
        #[arg(long)]
        json: String,
    },
    /// List records, newest first.
    List {
        #[arg(long)]
        form: Option<String>,
        #[arg(long = "filter-station")]
        filter_station: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = DEFAULT_LIMIT)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Print the records as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one record's view as JSON.
    Show { id: String },
}

/// Parse arguments, run, and turn errors into a message and exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_serve = matches!(cli.command, Command::Serve { .. });
    init_tracing(
        if is_serve { "info" } else { "warn" },
        cli.global.log_format == "json",
    );
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal: in a log file or the journal
    // the escape codes are noise.
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        logs.json().try_init()
    } else {
        logs.try_init()
    };
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut over = Overrides {
        config: cli.global.config,
        data_dir: cli.global.data_dir,
        station: cli.global.station,
        upstream_ca: cli.global.upstream_ca,
        ..Default::default()
    };
    match cli.command {
        Command::Serve {
            listen,
            upstream,
            max_body_bytes,
            cache_mb,
            sync_interval_secs,
            no_auto_sync,
            sync_page_kib,
            tls_cert,
            tls_key,
        } => {
            over.tls_cert = tls_cert;
            over.tls_key = tls_key;
            over.auto_sync = no_auto_sync.then_some(false);
            over.sync_page_kib = sync_page_kib;
            over.listen = listen;
            over.upstream = upstream;
            over.max_body_bytes = max_body_bytes;
            over.cache_mb = cache_mb;
            over.sync_interval_secs = sync_interval_secs;
            serve(Settings::resolve(&over)?)
        }
        Command::Sync {
            command,
            upstream,
            page_kib,
        } => {
            over.upstream = upstream;
            over.sync_page_kib = page_kib;
            let settings = Settings::resolve(&over)?;
            match command {
                None => sync_now(&settings, settings.sync_page_bytes),
                Some(SyncCommand::Status) => sync_status(&settings),
            }
        }
        Command::Record(cmd) => {
            let settings = Settings::resolve(&over)?;
            let records = match cmd {
                RecordCommand::Create { .. } => open_offline(&settings)?,
                _ => open_existing(&settings)?,
            };
            record(cmd, &records)
        }
        Command::Identity => {
            let settings = Settings::resolve(&over)?;
            identity(&settings)
        }
        Command::Admin(AdminCommand::CreateUser {
            username,
            role,
            user_station,
        }) => {
            let settings = Settings::resolve(&over)?;
            let records = open_offline(&settings)?;
            create_user(&records, &username, &role, user_station.as_deref())
        }
        Command::Enroll {
            upstream,
            code,
            name,
        } => {
            over.upstream = upstream;
            let settings = Settings::resolve(&over)?;
            let Some(upstream) = settings.upstream.clone() else {
                bail!("no upstream: pass --upstream URL or set `upstream` in the config file");
            };
            let records = open_offline(&settings)?;
            let ca = settings.upstream_ca.as_deref().map(load_ca).transpose()?;
            // A directory never given a station takes the code's, so the
            // command an admin is shown works as it is.
            let adopt = !settings.station_given && crate::startup::can_adopt_station(&records)?;
            let c = crate::upstream::enroll(
                &records,
                &settings.data_dir,
                &upstream,
                &code,
                &http_client(ca.as_ref()),
                adopt,
                name.as_deref(),
            )?;
            if adopt && c.station != records.station() {
                crate::startup::adopt_station(&records, &c.station)?;
            }
            println!(
                "enrolled with {} as a device of station {}; `tideline sync` and `serve --upstream` now sync with it",
                c.upstream, c.station
            );
            Ok(())
        }
        Command::Admin(AdminCommand::EnrollCode { kind, expires }) => {
            let Some(for_station) = over.station.take() else {
                bail!("name the device's station: tideline admin enroll-code --station CODE --kind boat|station");
            };
            let settings = Settings::resolve(&over)?;
            let records = open_offline(&settings)?;
            enroll_code(&records, &for_station, &kind, &expires)
        }
        Command::Admin(AdminCommand::Revoke { device }) => {
            let settings = Settings::resolve(&over)?;
            let records = open_offline(&settings)?;
            revoke(&records, &device)
        }
        Command::Admin(AdminCommand::CreateStation { code, name, island }) => {
            let settings = Settings::resolve(&over)?;
            let records = open_offline(&settings)?;
            let store = records.store().as_ref();
            let station = stations::create(store, &code, &name, &island)?;
            AuditLog::new().append(
                store,
                Event::new("cli", "station.create").target(station.code.clone()),
                true,
            )?;
            println!(
                "created station {} ({}, {})",
                station.code, station.name, station.island
            );
            Ok(())
        }
        Command::Admin(AdminCommand::Devices) => {
            let settings = Settings::resolve(&over)?;
            let records = open_existing(&settings)?;
            for d in devices::list(records.store().as_ref())? {
                println!(
                    "{}  {:<16} {:<7} {:<10} enrolled {}{}",
                    d.id,
                    d.name.as_deref().unwrap_or("(no name)"),
                    format!("{:?}", d.kind).to_lowercase(),
                    d.station,
                    d.enrolled_at,
                    if d.revoked { "  REVOKED" } else { "" }
                );
            }
            Ok(())
        }
        Command::Form(FormCommand::List) => {
            let settings = Settings::resolve(&over)?;
            let records = open_existing(&settings)?;
            let forms = records.forms();
            for latest in forms.list_latest() {
                for form in forms.versions(&latest.id) {
                    println!("{:<24} v{:<4} {}", form.id, form.version, form.title);
                }
            }
            Ok(())
        }
        Command::Form(FormCommand::Publish { file }) => {
            let settings = Settings::resolve(&over)?;
            let records = open_offline(&settings)?;
            if crate::auth::devices::credential(records.store().as_ref())?.is_some() {
                bail!(
                    "this instance syncs with an upstream; publish forms at HQ, which sends \
                     them to every station and boat"
                );
            }
            let json = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (form, new) = records.publish_form(&json)?;
            if new {
                crate::auth::AuditLog::new().append(
                    records.store().as_ref(),
                    crate::auth::Event::new("cli", "form.publish")
                        .target(form.id.clone())
                        .details(serde_json::json!({ "version": form.version })),
                    true,
                )?;
                println!(
                    "published {} version {}; stations and boats receive it at their next sync",
                    form.id, form.version
                );
            } else {
                println!(
                    "{} version {} was already published, unchanged",
                    form.id, form.version
                );
            }
            Ok(())
        }
        Command::Attachments(AttachmentsCommand::Gc { grace, dry_run }) => {
            let settings = Settings::resolve(&over)?;
            let records = open_offline(&settings)?;
            collect_files(&records, &settings.data_dir, &grace, dry_run)
        }
        Command::Backup { out } => {
            let settings = Settings::resolve(&over)?;
            let records = open_records(&settings).map_err(|e| {
                match e.downcast_ref::<StoreError>() {
                    Some(StoreError::InUse(dir)) => anyhow::anyhow!(
                        "{} is in use by a running `tideline serve`: ask it instead, as an admin: \
                         curl -H \"Authorization: Bearer TOKEN\" -o {} http://HOST:PORT/api/v1/backup",
                        dir.display(),
                        out.display()
                    ),
                    _ => e,
                }
            })?;
            // Written beside the target and renamed: no half backup under its name.
            let tmp = out.with_extension("partial");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let contents =
                crate::backup::write(records.store().as_ref(), &settings.data_dir, &mut w)?;
            w.into_inner()
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?
                .sync_all()?;
            std::fs::rename(&tmp, &out)?;
            println!(
                "wrote {}: {} store entries, {} file(s)",
                out.display(),
                contents.entries,
                contents.files
            );
            Ok(())
        }
        Command::Restore { input } => {
            let settings = Settings::resolve(&over)?;
            let contents = crate::backup::restore(&input, &settings.data_dir)?;
            println!(
                "restored {} into {}: {} store entries, {} file(s); check it with `tideline check`",
                input.display(),
                settings.data_dir.display(),
                contents.entries,
                contents.files
            );
            Ok(())
        }
        Command::Tls(TlsCommand::Init { name, ip, force }) => {
            let settings = Settings::resolve(&over)?;
            tls_init(&settings, &name, &ip, force)
        }
        Command::Check => {
            let settings = Settings::resolve(&over)?;
            let records = open_existing(&settings)?;
            check(&records, &settings.data_dir)
        }
        Command::Audit(AuditCommand::Verify) => {
            let settings = Settings::resolve(&over)?;
            let records = open_existing(&settings)?;
            audit_verify(&records)
        }
        Command::Export {
            format,
            out,
            form,
            filter_station,
            status,
            table,
        } => {
            let settings = Settings::resolve(&over)?;
            let filter = filter(form, filter_station, status)?;
            if format == "zip" {
                let Some(out) = out else {
                    bail!("a zip archive needs --out FILE");
                };
                let records = open_existing(&settings)?;
                return export_archive(&records, &settings.data_dir, &filter, &out);
            }
            let format: Format = format
                .parse()
                .map_err(|m: String| anyhow::anyhow!("{m}, or zip"))?;
            let records = open_existing(&settings)?;
            export(&records, format, &filter, out.as_deref(), table.as_deref())
        }
    }
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Make a local CA and a server certificate in <data>/tls/; `serve` then
    /// serves HTTPS with them, and tablets install the CA from /tablet.
    Init {
        /// A host name tablets use to reach this instance (repeatable).
        #[arg(long)]
        name: Vec<String>,
        /// An IP address tablets use to reach it, e.g. 192.168.8.10 (repeatable).
        #[arg(long)]
        ip: Vec<std::net::IpAddr>,
        /// Replace certificates made before (tablets must install the new CA).
        #[arg(long)]
        force: bool,
    },
}

fn tls_init(
    settings: &Settings,
    names: &[String],
    ips: &[std::net::IpAddr],
    force: bool,
) -> anyhow::Result<()> {
    let files = crate::local_tls::init(&settings.data_dir, names, ips, force)?;
    let host = names
        .first()
        .cloned()
        .or_else(|| ips.first().map(|ip| ip.to_string()))
        .unwrap_or_default();
    println!(
        "made a CA ({}) and a certificate for {}; `tideline serve` now serves HTTPS with them.\n\
         On each tablet, open https://{host}:PORT/tablet and install the CA as it says \
         (docs/OPERATIONS.md, \"Tablets\").",
        files.ca.display(),
        names
            .iter()
            .cloned()
            .chain(ips.iter().map(|ip| ip.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    // Certificates made by `tideline tls init`, unless others are given.
    let mut settings = settings;
    if settings.tls.is_none() {
        settings.tls = crate::local_tls::existing(&settings.data_dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = Application::build(&settings)?;
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            station = %settings.station,
            "tideline serving"
        );
        // Scripts and tests read the bound address from this line (useful with port 0).
        let scheme = if settings.tls.is_some() { "https" } else { "http" };
        println!("listening on {scheme}://{}", app.addr());
        if settings.tls.is_none() && !app.addr().ip().is_loopback() {
            // Passwords, session tokens and device credentials would cross
            // the network readable by anyone on it; tablets also refuse to
            // give a plain-HTTP page the device's position.
            tracing::warn!(
                listen = %app.addr(),
                "serving plain HTTP beyond this machine: passwords and session tokens cross the network readable, and tablets give such pages no position; serve HTTPS with --tls-cert and --tls-key (docs/OPERATIONS.md)"
            );
        }
        if let Some(code) = app.setup_code() {
            // On the console only, never in the log: it is a credential.
            println!(
                "no users yet: create the first admin within 24 hours with setup code {code} \
                 (POST /api/v1/setup), or offline with `tideline admin create-user`"
            );
        }
        std::io::stdout().flush().ok();
        // SIGTERM or Ctrl-C: stop accepting, let requests in flight finish
        // (up to SHUTDOWN_GRACE), then return here.
        let handle = app.handle();
        tokio::spawn(async move {
            crate::startup::stop_signal().await;
            tracing::info!("stop requested; no new connections");
            handle.stop(true).await;
        });
        app.run_until_stopped().await?;
        tracing::info!("stopped accepting; finishing work in progress");
        Ok::<(), anyhow::Error>(())
    })?;
    // A sync exchange runs on a blocking thread: give it the same grace.
    runtime.shutdown_timeout(crate::startup::SHUTDOWN_GRACE);
    // Every write was flushed before it was acknowledged; the store is
    // closed (and flushed once more) as the last handle drops.
    tracing::info!("tideline stopped");
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
    let result = sync_and_record(
        &records,
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

fn identity(settings: &Settings) -> anyhow::Result<()> {
    // Read from the key file alone, so this works while `serve` holds the store.
    let key = InstanceKey::load(&settings.data_dir)?;
    println!("instance id: {}", key.instance);
    println!("public key:  {} (ed25519, base64)", key.public_key_base64());
    Ok(())
}

fn create_user(
    records: &SharedRecords,
    username: &str,
    role: &str,
    station: Option<&str>,
) -> anyhow::Result<()> {
    let name = Username::try_from(username.to_string())?;
    let role: Role = role.parse()?;
    let station = station.unwrap_or(records.station());
    let store = records.store().as_ref();
    stations::check_known(store, records.station(), station)?;
    let password = read_password()?;
    let user = users::create(store, name, role, station, &password)?;
    AuditLog::new().append(
        store,
        Event::new("cli", "user.create")
            .target(user.username.to_string())
            .details(serde_json::json!({"role": user.role, "station": user.station})),
        true,
    )?;
    println!(
        "created {} user {} for station {}",
        user.role, user.username, user.station
    );
    Ok(())
}

/// The new password: from the terminal without echo (asked twice), or the
/// first line of standard input when it is a pipe or file.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        if first != again {
            bail!("the passwords differ; nothing was created");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input; nothing was created");
    }
    Ok(password)
}

/// `90m`, `24h`, `7d`.
fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
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

fn enroll_code(
    records: &SharedRecords,
    station: &str,
    kind: &str,
    expires: &str,
) -> anyhow::Result<()> {
    let station = users::station_code(station)?;
    let kind: devices::DeviceKind = kind.parse()?;
    let valid = parse_duration(expires)?;
    if valid.as_secs() > 30 * 86_400 {
        bail!("a code may be valid for 30 days at most");
    }
    let store = records.store().as_ref();
    stations::check_known(store, records.station(), &station)?;
    let (code, expires_at) = devices::issue_code(store, &station, kind, valid)?;
    AuditLog::new().append(
        store,
        Event::new("cli", "device.code").details(serde_json::json!({
            "station": station, "kind": kind, "expires_at": expires_at
        })),
        true,
    )?;
    let until = chrono::DateTime::from_timestamp(expires_at, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    println!("{code}");
    eprintln!(
        "one-time code for a {} of station {station}, valid until {until}: on the device, run \
         `tideline --station {station} enroll --upstream URL --code {code}`",
        format!("{kind:?}").to_lowercase()
    );
    Ok(())
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

fn revoke(records: &SharedRecords, device: &str) -> anyhow::Result<()> {
    let id: uuid::Uuid = device.parse().map_err(|_| {
        anyhow::anyhow!("{device:?} is not a device id (see `tideline admin devices`)")
    })?;
    let store = records.store().as_ref();
    let d = devices::revoke(store, &id)?;
    AuditLog::new().append(
        store,
        Event::new("cli", "device.revoke").target(id.to_string()),
        true,
    )?;
    println!(
        "revoked {} (station {}); its next sync will be refused",
        d.id, d.station
    );
    Ok(())
}

fn audit_verify(records: &SharedRecords) -> anyhow::Result<()> {
    let (count, problems) = audit::verify(records.store().as_ref())?;
    if problems.is_empty() {
        let noun = if count == 1 { "entry" } else { "entries" };
        println!("audit log intact: {count} {noun}, every link verified");
        return Ok(());
    }
    for p in &problems {
        println!("entry {}: {}", p.seq, p.message);
    }
    bail!(
        "the audit log has {} problem(s) in {count} entries; it has been altered or damaged",
        problems.len()
    )
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

fn human_bytes(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

fn sync_status(settings: &Settings) -> anyhow::Result<()> {
    let records = open_existing(settings)?;
    let status = status_json(&records, settings.upstream.as_deref(), false);
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

/// Open an existing data directory for a command that only reads: a typo
/// in `--data` must say so, not create an empty store that looks like lost
/// records.
fn open_existing(settings: &Settings) -> anyhow::Result<SharedRecords> {
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

fn open_offline(settings: &Settings) -> anyhow::Result<SharedRecords> {
    open_records(settings).map_err(|e| match e.downcast_ref::<StoreError>() {
        Some(StoreError::InUse(dir)) => anyhow::anyhow!(
            "{} is in use by a running `tideline serve`; stop it first, or use its HTTP API \
             (for example: curl http://127.0.0.1:8080/api/v1/records). Nothing was changed.",
            dir.display()
        ),
        _ => e,
    })
}

fn filter(
    form: Option<String>,
    station: Option<String>,
    status: Option<String>,
) -> anyhow::Result<Filter> {
    Ok(Filter {
        form,
        station,
        status: status.map(|s| s.parse()).transpose()?,
        ..Filter::default()
    })
}

fn record(cmd: RecordCommand, records: &SharedRecords) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match cmd {
        RecordCommand::Create { form, json } => {
            let text = if json == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&json).with_context(|| format!("cannot read {json}"))?
            };
            let fields: Map<String, Json> = serde_json::from_str(&text)
                .with_context(|| format!("{json} is not a JSON object of fields"))?;
            let view = records
                .create(Author::Instance, &form, &fields)
                .map_err(explain)?
                .view;
            writeln!(stdout, "{}", pretty(view.get()))?;
        }
        RecordCommand::List {
            form,
            filter_station,
            status,
            limit,
            offset,
            json,
        } => {
            let page = records.list(&filter(form, filter_station, status)?, limit, offset)?;
            if json {
                let views: Vec<Json> = page
                    .records
                    .iter()
                    .map(|r| serde_json::from_str(r.get()))
                    .collect::<Result<_, _>>()?;
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"records": views, "total": page.total})
                    )?
                )?;
            } else {
                writeln!(
                    stdout,
                    "{:<36}  {:<16}  {:<9}  {:<8}  {:<20}  VESSEL",
                    "ID", "FORM", "STATUS", "STATION", "CREATED"
                )?;
                for r in &page.records {
                    let v: Json = serde_json::from_str(r.get())?;
                    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
                    writeln!(
                        stdout,
                        "{:<36}  {:<16}  {:<9}  {:<8}  {:<20}  {}",
                        s("id"),
                        s("form"),
                        s("status"),
                        s("station"),
                        s("created_at").chars().take(19).collect::<String>(),
                        v["fields"]["vessel_name"].as_str().unwrap_or("")
                    )?;
                }
                writeln!(stdout, "{} of {} record(s)", page.records.len(), page.total)?;
            }
        }
        RecordCommand::Show { id } => {
            let id = id
                .parse()
                .map_err(|_| anyhow::anyhow!("{id:?} is not a valid record id (a UUID)"))?;
            let view = records.get(&id).map_err(explain)?;
            writeln!(stdout, "{}", pretty(view.get()))?;
        }
    }
    Ok(())
}

/// Validation failures carry every violation; print them, one per line.
fn explain(e: tideline_sync::RecordsError) -> anyhow::Error {
    use tideline_sync::RecordsError::{Incomplete, Invalid};
    match &e {
        Invalid(v) | Incomplete { violations: v, .. } => {
            let lines: Vec<String> = v
                .iter()
                .map(|v| format!("  {}: {}", v.path, v.message))
                .collect();
            anyhow::anyhow!("{e}; nothing was saved:\n{}", lines.join("\n"))
        }
        _ => e.into(),
    }
}

fn pretty(raw: &str) -> String {
    serde_json::from_str::<Json>(raw)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| raw.to_string())
}

fn export_archive(
    records: &SharedRecords,
    data: &Path,
    filter: &Filter,
    out: &Path,
) -> anyhow::Result<()> {
    let blobs = tideline_sync::blobs::BlobStore::open(data)?;
    let mut views = Vec::new();
    records.for_each(filter, |view| -> anyhow::Result<()> {
        views.push(view.to_owned());
        Ok(())
    })?;
    // Written beside the target and renamed, so a failed export leaves no half archive.
    let tmp = out.with_extension("zip.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let summary = crate::export::write_archive(std::io::BufWriter::new(file), views, |sha| {
        sha.parse().ok().and_then(|h| blobs.path(&h))
    })?;
    std::fs::rename(&tmp, out)?;
    println!(
        "wrote {}: {} record(s), {} file(s){}",
        out.display(),
        summary.records,
        summary.files,
        if summary.missing > 0 {
            format!(
                ", {} referenced file(s) not on this instance (listed as included=no)",
                summary.missing
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

fn export(
    records: &SharedRecords,
    format: Format,
    filter: &Filter,
    out: Option<&Path>,
    table: Option<&str>,
) -> anyhow::Result<()> {
    if table.is_some() && (format != Format::Csv || out.is_some()) {
        bail!("--table is for CSV to standard output; with --out every table is written");
    }
    let form = filter.form.as_deref();
    let write_table = |path: Option<&Path>, table: Option<&str>| -> anyhow::Result<()> {
        let sink: Box<dyn Write> = match path {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let forms = records.forms();
        let mut exporter = Exporter::new(sink, format, &forms, form, table)?;
        records.for_each(filter, |view| -> anyhow::Result<()> {
            exporter.record(view.get())?;
            Ok(())
        })?;
        exporter.finish()?;
        Ok(())
    };
    write_table(out, table)?;
    if let (Format::Csv, Some(main)) = (format, out) {
        for repeat in repeat_tables(&records.forms(), form) {
            let path = main.with_extension(format!("{repeat}.csv"));
            write_table(Some(&path), Some(&repeat))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
