//! What the server's integration tests (`server/tests/`) and the cross-crate
//! tests (`tests/`, crate `tideline-tests`) share: real instances on loopback
//! port 0 over their own sled stores, the test users, logging in, and clients
//! that carry a session. Compiled only with the `test-support` feature.
//!
//! It lives here, behind a feature, rather than in a support crate of its own
//! because the server's own integration tests use it: a crate that depends on
//! `tideline-server`, dev-depended on by `tideline-server`, would hand those
//! tests a second copy of this crate, whose `Settings` and `SharedRecords` are
//! other types than the ones the tests hold. The server turns the feature on
//! for its tests through a dev-dependency on itself, `tideline-tests` through
//! its ordinary dependency, so a plain `cargo test --workspace` builds it.

use crate::config::{FileConfig, Overrides};
use crate::data_dir::SharedRecords;
use crate::{Application, Settings};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;

/// Every test user's password.
pub const PASSWORD: &str = "a test password";
/// The user tests act as: a supervisor of the instance's station (at HQ, of
/// every station).
pub const TESTER: &str = "tester";

/// Settings for an instance on `dir`, listening on `listen` (port 0 for any).
pub fn settings(dir: &Path, listen: &str, station: &str, upstream: Option<&str>) -> Settings {
    Settings::merge(
        Overrides {
            data_dir: Some(dir.to_path_buf()),
            listen: Some(listen.to_string()),
            station: Some(station.to_string()),
            upstream: upstream.map(str::to_string),
            // Tests drive syncs explicitly; a background loop would race them.
            // (Without an upstream there is no loop either way.)
            auto_sync: Some(false),
            ..Default::default()
        },
        FileConfig::default(),
    )
    .expect("settings")
}

/// Create a user directly in the store (as `tideline admin create-user` does);
/// one already there is fine, as a store is reused across restarts.
pub fn add_user(records: &SharedRecords, name: &str, role: &str, station: &str) {
    use crate::auth::users;
    let name = users::Username::try_from(name.to_string()).expect("username");
    match users::create(
        records.store().as_ref(),
        name,
        role.parse().expect("role"),
        station,
        PASSWORD,
    ) {
        Ok(_) | Err(users::UserError::Exists(_)) => {}
        Err(e) => panic!("create user: {e}"),
    }
}

/// A client that sends `token` with every request.
pub fn client_with(token: &str) -> reqwest::Client {
    client_trusting(token, None)
}

/// Like [`client_with`], also trusting `ca` (for an instance serving HTTPS).
pub fn client_trusting(token: &str, ca: Option<&reqwest::Certificate>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    let mut builder = reqwest::Client::builder().default_headers(headers);
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(ca.clone());
    }
    builder.build().expect("client")
}

/// Log in over HTTP; panics unless it works.
pub async fn login(base: &str, name: &str) -> String {
    login_trusting(base, name, None).await
}

/// Like [`login`], trusting `ca` for the instance's certificate.
pub async fn login_trusting(base: &str, name: &str, ca: Option<&reqwest::Certificate>) -> String {
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(ca.clone());
    }
    let resp = builder
        .build()
        .expect("client")
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 200, "login as {name} failed");
    let body: Value = resp.json().await.expect("json");
    body["token"].as_str().expect("token").to_string()
}

/// An instance serving in this process (see [`serve`]).
pub struct Served {
    /// `http://ADDRESS`, or `https://localhost:PORT` with TLS.
    pub base: String,
    /// The address it listens on (the port chosen for port 0).
    pub addr: SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
    /// Logged in as [`TESTER`].
    pub client: reqwest::Client,
}

/// Serve `records` with `settings` on this runtime, with [`TESTER`] created
/// as a supervisor of the settings' station and logged in.
///
/// With TLS, the client trusts the settings' `upstream_ca` (the tests' CA
/// signs both ends' certificates).
pub async fn serve(settings: &Settings, records: SharedRecords) -> Served {
    add_user(&records, TESTER, "supervisor", &settings.station);
    let app = Application::with_records(settings, records).expect("start");
    // The test certificates name localhost, so HTTPS goes there by name.
    let base = match settings.tls {
        Some(_) => format!("https://localhost:{}", app.port()),
        None => format!("http://{}", app.addr()),
    };
    let ca = settings
        .tls
        .as_ref()
        .and(settings.upstream_ca.as_deref())
        .map(|p| {
            reqwest::Certificate::from_pem(&std::fs::read(p).expect("read the CA")).expect("CA")
        });
    let addr = app.addr();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let token = login_trusting(&base, TESTER, ca.as_ref()).await;
    Served {
        base,
        addr,
        handle,
        client: client_trusting(&token, ca.as_ref()),
    }
}
