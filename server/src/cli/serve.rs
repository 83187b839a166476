//! `tideline serve` and `tideline tls init`: running the instance, and the
//! certificates it serves a LAN's tablets with.

use crate::config::{Overrides, Settings};
use crate::startup::Application;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// Run the HTTP server on the data directory.
#[derive(Args)]
pub struct ServeArgs {
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
}

impl ServeArgs {
    /// What these flags say about the settings.
    pub(super) fn apply(&self, over: &mut Overrides) {
        over.tls_cert = self.tls_cert.clone();
        over.tls_key = self.tls_key.clone();
        over.auto_sync = self.no_auto_sync.then_some(false);
        over.sync_page_kib = self.sync_page_kib;
        over.listen = self.listen.clone();
        over.upstream = self.upstream.clone();
        over.max_body_bytes = self.max_body_bytes;
        over.cache_mb = self.cache_mb;
        over.sync_interval_secs = self.sync_interval_secs;
    }
}

#[derive(Subcommand)]
pub enum TlsCommand {
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

pub(super) fn tls(cmd: TlsCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        TlsCommand::Init { name, ip, force } => tls_init(settings, &name, &ip, force),
    }
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

pub(super) fn serve(settings: Settings) -> anyhow::Result<()> {
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
