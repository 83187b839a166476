//! Shared support for Tideline's cross-crate tests and harnesses: real
//! instances on loopback port 0, each over its own sled store, several of
//! them in a fleet. Users, logins and starting one instance come from
//! `tideline_server::test_support`, which the server's own tests share.

#![forbid(unsafe_code)]
pub mod process;
pub mod proxy;
pub mod tap;

use serde_json::{json, Value};
use std::path::Path;
pub use tideline_server::test_support::{add_user, client_with, login, settings, PASSWORD, TESTER};
use tideline_server::{open_records, SharedRecords};
use tideline_server::{test_support, Settings};

/// One running instance, in this process, with a real HTTP server.
pub struct Instance {
    pub name: String,
    pub base: String,
    pub settings: Settings,
    pub records: SharedRecords,
    handle: Option<actix_web::dev::ServerHandle>,
    pub client: reqwest::Client,
}

impl Instance {
    /// Start an instance with no upstream (HQ, or a station on its own).
    pub async fn start(name: &str, dir: &Path, station: &str) -> Instance {
        let settings = settings(dir, "127.0.0.1:0", station, None);
        let records = open_records(&settings).expect("open store");
        Self::serve(name, settings, records).await
    }

    /// Like [`Self::start`], with its settings adjusted by `configure`.
    pub async fn start_with(
        name: &str,
        dir: &Path,
        station: &str,
        configure: impl FnOnce(&mut Settings),
    ) -> Instance {
        let mut settings = settings(dir, "127.0.0.1:0", station, None);
        configure(&mut settings);
        let records = open_records(&settings).expect("open store");
        Self::serve(name, settings, records).await
    }

    /// Start an instance enrolled with `up`, which it reaches at `url` (its
    /// address, or a proxy in front of it). It syncs when asked.
    pub async fn start_under(
        name: &str,
        dir: &Path,
        station: &str,
        up: &Instance,
        url: &str,
    ) -> Instance {
        Self::start_under_with(name, dir, station, up, url, |_| {}).await
    }

    /// Like [`Self::start_under`], with its settings adjusted by `configure`.
    pub async fn start_under_with(
        name: &str,
        dir: &Path,
        station: &str,
        up: &Instance,
        url: &str,
        configure: impl FnOnce(&mut Settings),
    ) -> Instance {
        let mut settings = settings(dir, "127.0.0.1:0", station, Some(url));
        configure(&mut settings);
        let records = up.enrol(&settings, name).await;
        Self::serve(name, settings, records).await
    }

    /// Serve HTTPS with `cert` and `key`; the harness's own client trusts `ca`.
    pub async fn start_tls(
        name: &str,
        dir: &Path,
        station: &str,
        cert: &Path,
        key: &Path,
        ca: &Path,
    ) -> Instance {
        let mut settings = settings(dir, "127.0.0.1:0", station, None);
        settings.tls = Some((cert.to_path_buf(), key.to_path_buf()));
        settings.upstream_ca = Some(ca.to_path_buf());
        let records = open_records(&settings).expect("open store");
        Self::serve(name, settings, records).await
    }

    /// Like [`Self::start_under`], trusting `ca` for the upstream's certificate.
    pub async fn start_under_ca(
        name: &str,
        dir: &Path,
        station: &str,
        up: &Instance,
        url: &str,
        ca: &Path,
    ) -> Instance {
        Self::start_under_with(name, dir, station, up, url, |s| {
            s.upstream_ca = Some(ca.to_path_buf())
        })
        .await
    }

    /// Like [`Self::start_under`], syncing by itself as a deployed one does.
    pub async fn start_syncing(
        name: &str,
        dir: &Path,
        station: &str,
        up: &Instance,
        url: &str,
    ) -> Instance {
        Self::start_under_with(name, dir, station, up, url, |s| {
            s.auto_sync = true;
            s.sync_interval_secs = 86_400;
        })
        .await
    }

    /// Open the store of a new downstream and enrol it with this instance, as
    /// an admin's code and `tideline enroll` would.
    async fn enrol(&self, settings: &Settings, name: &str) -> SharedRecords {
        use tideline_server::auth::devices::{issue_code, DeviceKind};
        let kind = if self.settings.station == "HQ" {
            DeviceKind::Station
        } else {
            DeviceKind::Boat
        };
        let (code, _) = issue_code(
            self.records.store().as_ref(),
            &settings.station,
            kind,
            std::time::Duration::from_secs(3600),
        )
        .expect("issue an enrolment code");
        let records = open_records(settings).expect("open store");
        let (r, s) = (records.clone(), settings.clone());
        let device_name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let url = s.upstream.clone().expect("an upstream");
            let ca = s
                .upstream_ca
                .as_deref()
                .map(|p| tideline_server::upstream::load_ca(p).expect("the upstream CA"));
            tideline_server::upstream::enroll(
                &r,
                &s.data_dir,
                &url,
                &code,
                &tideline_server::upstream::http_client(ca.as_ref()),
                false,
                Some(&device_name),
            )
            .expect("enrol");
        })
        .await
        .expect("enrolment task");
        records
    }

    async fn serve(name: &str, settings: Settings, records: SharedRecords) -> Instance {
        let served = test_support::serve(&settings, records.clone()).await;
        let mut settings = settings;
        settings.listen = served.addr;
        Instance {
            name: name.to_string(),
            base: served.base,
            settings,
            records,
            handle: Some(served.handle),
            client: served.client,
        }
    }

    /// Stop serving (the store stays open in this process, as a machine that
    /// is switched off keeps its disk).
    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop(false).await;
        }
    }

    /// Serve again on the same address and store, as after a real restart
    /// (sessions are kept in the store; the harness signs in afresh anyway).
    pub async fn restart(&mut self) {
        let again = Self::serve(&self.name, self.settings.clone(), self.records.clone()).await;
        *self = again;
    }

    /// Post `request` to `up`'s `/sync/v1` with this instance's device
    /// credential, as its sync would, whatever the request says.
    pub async fn post_sync(
        &self,
        up: &Instance,
        request: &tideline_sync::protocol::SyncRequest,
    ) -> reqwest::Response {
        use tideline_server::auth::devices;
        let store = self.records.store().as_ref();
        let credential = devices::credential(store).unwrap().unwrap();
        let id = self.records.identity().device_id;
        reqwest::Client::new()
            .post(up.url("/sync/v1"))
            .bearer_auth(devices::bearer(&id, &credential.secret))
            .body(tideline_sync::protocol::encode_request(request).unwrap())
            .send()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn create(&self, form: &str, fields: Value) -> Value {
        let resp = self
            .client
            .post(self.url("/api/v1/records"))
            .json(&json!({"form": form, "fields": fields}))
            .send()
            .await
            .expect("create");
        assert_eq!(resp.status(), 201, "{}: create failed", self.name);
        resp.json().await.expect("json")
    }

    pub async fn patch(&self, id: &str, fields: Value) -> Value {
        let resp = self
            .client
            .patch(self.url(&format!("/api/v1/records/{id}")))
            .json(&json!({ "fields": fields }))
            .send()
            .await
            .expect("patch");
        assert_eq!(resp.status(), 200, "{}: patch failed", self.name);
        resp.json().await.expect("json")
    }

    pub async fn get(&self, id: &str) -> Value {
        self.get_json(&format!("/api/v1/records/{id}")).await
    }

    /// GET `path` with this instance's session, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }

    /// GET `path` with this instance's session: the status and the body.
    pub async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = self.client.get(self.url(path)).send().await.expect("get");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    /// A stored file by its SHA-256 (hex): the status and the bytes.
    pub async fn blob(&self, hash: &str) -> (u16, Vec<u8>) {
        self.get_bytes(&format!("/api/v1/blobs/{hash}")).await
    }

    /// Every record, newest first.
    pub async fn all(&self) -> Vec<Value> {
        let page: Value = self
            .client
            .get(self.url("/api/v1/records?limit=10000"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        page["records"].as_array().cloned().unwrap_or_default()
    }

    /// `POST /api/v1/sync/now`: the status and body the user would see.
    pub async fn sync_now(&self) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/api/v1/sync/now"))
            .send()
            .await
            .expect("sync/now");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Sync now and insist it worked.
    pub async fn sync_ok(&self) -> Value {
        let (status, body) = self.sync_now().await;
        assert_eq!(status, 200, "{}: sync failed: {body}", self.name);
        body
    }
}

/// A complete boarding report.
pub fn report(vessel: &str) -> Value {
    json!({
        "boarding_time": "2026-11-20T14:05:00-04:00",
        "position": {"lat": 13.0969, "lon": -59.6145},
        "vessel_name": vessel,
        "persons_on_board": 4,
        "reason": "routine_inspection",
        "crew": [{"name": "A. Joseph", "role": "master"}, {"name": "B. Charles"}],
        "contraband_found": false,
        "findings": "Vessel boarded without incident. Papers in order.",
        "outcome": "released",
        "officers": ["PC Smith"]
    })
}

/// An XLSForm workbook from rows of text per sheet (the first row of each is its
/// header), as a spreadsheet program would save it.
pub fn xlsform(sheets: &[(&str, Vec<Vec<&str>>)]) -> Vec<u8> {
    tideline_schemas::xlsform::workbook(sheets).expect("workbook")
}

/// A small XLSForm `patrol_check` with settings version `version`: a question
/// shown only when contraband was found, and a cross-field constraint; `extra`
/// rows are appended to its survey.
pub fn patrol_xlsform(version: &str, extra: &[Vec<&str>]) -> Vec<u8> {
    let mut survey = vec![
        vec![
            "type",
            "name",
            "label",
            "required",
            "relevant",
            "constraint",
            "constraint_message",
        ],
        vec![
            "integer",
            "persons",
            "Persons on board",
            "yes",
            "",
            ". >= 1",
            "",
        ],
        vec![
            "select_one yes_no",
            "contraband",
            "Contraband found?",
            "yes",
            "",
            "",
            "",
        ],
        vec![
            "text",
            "contraband_detail",
            "What was found",
            "yes",
            "${contraband} = 'yes'",
            "",
            "",
        ],
        vec![
            "integer",
            "arrests",
            "Arrests",
            "",
            "",
            ". <= ${persons}",
            "Cannot arrest more people than are on board",
        ],
    ];
    survey.extend(extra.iter().cloned());
    xlsform(&[
        ("survey", survey),
        (
            "choices",
            vec![
                vec!["list_name", "name", "label"],
                vec!["yes_no", "yes", "Yes"],
                vec!["yes_no", "no", "No"],
            ],
        ),
        (
            "settings",
            vec![
                vec!["form_id", "form_title", "version"],
                vec!["patrol_check", "Patrol check", version],
            ],
        ),
    ])
}

/// A CA and a certificate it signed for localhost, written as PEM files:
/// (ca.pem, cert.pem, key.pem).
pub fn certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tideline test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}
