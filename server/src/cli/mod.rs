//! The command line (docs/DESIGN.md §9): `serve`, `sync`, `record create|list|show`,
//! `export`, `identity`, `admin …`, `audit verify`, and the rest, one module
//! per group of commands. Settings are resolved once, here, from the config
//! file, the environment and the flags; each group's module runs its
//! commands with them.
//!
//! Commands other than `serve` open the data directory themselves. sled allows
//! one process per directory, so while `tideline serve` runs on it they stop
//! with a clear message (pointing at the HTTP API instead) and touch nothing.

mod admin;
mod common;
mod data;
mod records;
mod serve;
mod sync;

use crate::config::{Overrides, Settings};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    Serve(serve::ServeArgs),
    Sync(sync::SyncArgs),
    /// Create, list and show records.
    #[command(subcommand)]
    Record(records::RecordCommand),
    /// Print this instance's id and public key.
    Identity,
    Enroll(sync::EnrollArgs),
    /// Manage people (works offline on the data directory).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
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
    Tls(serve::TlsCommand),
    /// Attachment files.
    #[command(subcommand)]
    Attachments(data::AttachmentsCommand),
    /// Forms: list them, or publish a new version (at HQ).
    #[command(subcommand)]
    Form(records::FormCommand),
    Export(records::ExportArgs),
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
    // For `admin enroll-code`, --station names the device's station, not
    // this instance's.
    let device_station = match &cli.command {
        Command::Admin(admin::AdminCommand::EnrollCode { .. }) => over.station.take(),
        _ => None,
    };
    match &cli.command {
        Command::Serve(args) => args.apply(&mut over),
        Command::Sync(args) => args.apply(&mut over),
        Command::Enroll(args) => args.apply(&mut over),
        _ => {}
    }
    let settings = Settings::resolve(&over)?;
    match cli.command {
        Command::Serve(_) => serve::serve(settings),
        Command::Sync(args) => sync::sync(args, &settings),
        Command::Enroll(args) => sync::enroll(args, &settings),
        Command::Record(cmd) => records::records(cmd, &settings),
        Command::Form(cmd) => records::forms(cmd, &settings),
        Command::Export(args) => records::export_command(args, &settings),
        Command::Identity => admin::identity(&settings),
        Command::Admin(cmd) => admin::admin(cmd, &settings, device_station),
        Command::Audit(cmd) => admin::audit(cmd, &settings),
        Command::Backup { out } => data::backup(&settings, &out),
        Command::Restore { input } => data::restore(&settings, &input),
        Command::Check => data::check_command(&settings),
        Command::Tls(cmd) => serve::tls(cmd, &settings),
        Command::Attachments(cmd) => data::attachments(cmd, &settings),
    }
}
