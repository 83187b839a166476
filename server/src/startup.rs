//! Building and running the HTTP server, and nothing else: [`Application::build`]
//! opens the data directory (`crate::data_dir`), makes the shared state
//! (`crate::state`), binds the listener (port 0 picks a free port, which
//! tests rely on) and exposes the bound port before serving.

use crate::access;
use crate::auth::sessions::{Limiter, Sessions};
use crate::auth::users;
use crate::auth::AuditLog;
use crate::config::Settings;
use crate::data_dir::{open_records, SharedRecords};
use crate::error::{json_error, query_error};
use crate::routes;
use crate::state::{AppState, SetupCode};
use crate::upstream::{LoopTiming, SyncAgent};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tideline_sync::blobs::BlobStore;
use tideline_sync::engine::Upstream;

/// How long a stopping instance waits for requests and sync exchanges in
/// flight before it exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Resolves at the first SIGTERM (how service managers stop a program) or
/// Ctrl-C.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long the setup code printed at start stays valid.
pub const SETUP_CODE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Failed logins allowed per account, and per address, within [`LOGIN_WINDOW`].
pub const ACCOUNT_ATTEMPTS: u32 = 5;
pub const ADDRESS_ATTEMPTS: u32 = 20;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

pub struct Application {
    server: Server,
    addr: SocketAddr,
    setup_code: Option<String>,
}

impl Application {
    pub fn build(settings: &Settings) -> anyhow::Result<Application> {
        // A start that fails (the port is taken, a certificate is missing)
        // leaves no half-made data directory behind to be mistaken later
        // for a set-up one.
        let fresh = !settings.data_dir.exists();
        let built =
            open_records(settings).and_then(|records| Application::with_records(settings, records));
        if built.is_err() && fresh {
            // Everything holding the store was dropped with the error.
            let _ = std::fs::remove_dir_all(&settings.data_dir);
        }
        built
    }

    /// Serve an already-open record service (tests use this with their own store).
    pub fn with_records(
        settings: &Settings,
        records: SharedRecords,
    ) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let addr = listener.local_addr()?;
        let ca = settings
            .upstream_ca
            .as_deref()
            .map(crate::upstream::load_ca)
            .transpose()?;
        let blobs = Arc::new(BlobStore::open(&settings.data_dir)?);
        let uploads = crate::uploads::Uploads::open(&settings.data_dir)?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let key = Arc::new(crate::auth::InstanceKey::load_or_create(
            &settings.data_dir,
            records.identity().device_id,
        )?);
        let agent = settings.upstream.as_ref().map(|url| {
            SyncAgent::new(
                records.clone(),
                key.clone(),
                blobs.clone(),
                url.clone(),
                settings.sync_page_bytes,
                ca.clone(),
                crate::upstream::FileFetch {
                    eager_forms: settings.attachments.eager_forms.clone(),
                    requested: Vec::new(),
                    max_bytes: settings.attachments.max_bytes as u64,
                },
                metrics.clone(),
            )
        });
        if let Some(agent) = agent.as_ref().filter(|_| settings.auto_sync) {
            let timing = LoopTiming {
                interval: std::time::Duration::from_secs(settings.sync_interval_secs),
                ..LoopTiming::default()
            };
            tokio::spawn(agent.clone().run(timing));
        }
        let setup = if users::any_exist(records.store().as_ref())? {
            None
        } else {
            Some(SetupCode {
                code: crate::auth::sessions::readable_code(3),
                expires: Instant::now() + SETUP_CODE_LIFETIME,
            })
        };
        let setup_code = setup.as_ref().map(|s| s.code.clone());
        let sessions = Sessions::new(
            records.store().clone(),
            settings.session_idle,
            settings.session_max_age,
        );
        let state = web::Data::new(AppState {
            records,
            max_body_bytes: settings.max_body_bytes,
            upstream: Arc::new(Upstream::new()),
            agent,
            sessions,
            audit: AuditLog::new(),
            account_limits: Limiter::new(ACCOUNT_ATTEMPTS, LOGIN_WINDOW),
            address_limits: Limiter::new(ADDRESS_ATTEMPTS, LOGIN_WINDOW),
            setup: Mutex::new(setup),
            tls: settings.tls.is_some(),
            blobs,
            uploads,
            attachments: settings.attachments.clone(),
            map_tiles: settings.map_tile_url.clone(),
            metrics: metrics.clone(),
            data_dir: settings.data_dir.clone(),
            key,
        });
        let limit = settings.max_body_bytes;
        let tls = settings
            .tls
            .as_ref()
            .map(|(c, k)| tls_config(c, k))
            .transpose()?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(move |e, _| json_error(e, limit).into()),
                )
                .app_data(web::PayloadConfig::new(limit))
                .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e).into()))
                .wrap(from_fn(access::authenticate))
                .wrap(tracing_actix())
                .wrap(from_fn(count_request))
                .configure(crate::openrosa::configure)
                .configure(crate::web::configure)
                .configure(routes::configure)
        });
        // The binary handles SIGTERM and Ctrl-C itself (`stop_signal`), so
        // that a stop always waits for the work in flight.
        let server = server
            .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
            .disable_signals();
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Application {
            server,
            addr,
            setup_code,
        })
    }

    /// The one-time code for creating the first admin, when there are no users yet.
    pub fn setup_code(&self) -> Option<&str> {
        self.setup_code.as_deref()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The TLS configuration from a PEM certificate chain and its private key.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("cannot read the private key {}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| anyhow::anyhow!("TLS setup failed: {e}"))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| anyhow::anyhow!("the certificate and key do not make a TLS identity: {e}"))
}

/// Count every request and its latency by route (the outermost middleware,
/// so refusals by authentication are counted too).
async fn count_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let res = next.call(req).await;
    if let Some(metrics) = metrics {
        let (route, status) = match &res {
            Ok(r) => (
                r.request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".into()),
                r.status().as_u16(),
            ),
            Err(e) => (
                "unmatched".into(),
                e.as_response_error().status_code().as_u16(),
            ),
        };
        metrics
            .http_duration
            .get_or_create(&crate::metrics::RouteLabels {
                route: route.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        metrics
            .http_requests
            .get_or_create(&crate::metrics::HttpLabels {
                method,
                route,
                status,
            })
            .inc();
    }
    res
}

/// Request logging: method, path and status only, never bodies, and never
/// the token a phone's path carries.
fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%{request}xi %s %Dms")
        .custom_request_replace("request", |req| {
            let query = match req.query_string() {
                "" => String::new(),
                q => format!("?{q}"),
            };
            format!(
                "{} {}{query} {:?}",
                req.method(),
                redacted_path(req.path()),
                req.version()
            )
        })
        .log_target("tideline::http")
}

/// `path` as logs may show it: an OpenRosa phone path's token replaced.
fn redacted_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/v1/key/") {
        Some(rest) => {
            let after = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/v1/key/[token]{after}").into()
        }
        None => path.into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_phone_token_never_reaches_the_log() {
        assert_eq!(
            super::redacted_path("/v1/key/tlp.ab.SECRET/projects/BB-01/submission"),
            "/v1/key/[token]/projects/BB-01/submission"
        );
        assert_eq!(super::redacted_path("/api/v1/records"), "/api/v1/records");
    }
}
