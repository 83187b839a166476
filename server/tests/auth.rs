//! People and what they may do, through the real HTTP API: nothing but
//! /healthz without a session, roles, station scope, login throttling, the
//! one-time setup code, and the audit trail all of it leaves.

mod common;

use common::{report, settings, spawn_app};
use serde_json::{json, Value};
use tideline_server::test_support::{add_user, client_with, login, PASSWORD};
use tideline_server::{open_records, Application};

async fn status_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn nothing_but_healthz_answers_without_a_session() {
    let app = spawn_app().await;
    let a = &app.anonymous;
    let id = app.create(&report()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        a.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let calls = [
        a.get(app.url("/api/v1/forms")),
        a.get(app.url("/api/v1/records")),
        a.get(app.url(&format!("/api/v1/records/{id}"))),
        a.get(app.url(&format!("/api/v1/records/{id}/automerge"))),
        a.patch(app.url(&format!("/api/v1/records/{id}")))
            .json(&json!({"fields": {"arrests": 1}})),
        a.post(app.url("/api/v1/records"))
            .json(&json!({"form": "boarding-report", "fields": report()})),
        a.get(app.url("/api/v1/export?format=jsonl")),
        a.get(app.url("/api/v1/sync/status")),
        a.get(app.url("/api/v1/audit")),
        a.get(app.url("/api/v1/users")),
        a.get(app.url("/api/v1/no/such/thing")),
        // A forged or stale token is no better than none.
        a.get(app.url("/api/v1/records"))
            .bearer_auth("tls_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ];
    for call in calls {
        let (status, body) = status_of(call.send().await.unwrap()).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "unauthenticated");
    }
    // Pages of the web interface send a browser to the sign-in page instead,
    // and show nothing.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for page in [
        "/records",
        "/records/new?form=boarding-report",
        "/map",
        "/no/such/page",
    ] {
        let resp = browser.get(app.url(page)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{page}");
        let to = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/login?next="), "{page} -> {to}");
        assert!(resp.text().await.unwrap().is_empty());
    }
    let resp = browser
        .post(app.url(&format!("/records/{id}/status")))
        .form(&[("to", "closed")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    // The refused edit changed nothing.
    let view: Value = app
        .get(&format!("/api/v1/records/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["fields"]["arrests"], 0);
}

#[tokio::test]
async fn login_gives_a_token_and_a_cookie_and_logout_ends_it() {
    let app = spawn_app().await;
    let resp = app
        .anonymous
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": "tester", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("tideline_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["role"], "supervisor");
    assert_eq!(body["station"], "BB-01");
    let token = body["token"].as_str().unwrap();

    // The cookie alone works, as a browser sends it.
    let session = cookie.split(';').next().unwrap().to_string();
    let resp = app
        .anonymous
        .get(app.url("/api/v1/me"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let me = client_with(token);
    assert_eq!(
        me.get(app.url("/api/v1/me")).send().await.unwrap().status(),
        200
    );
    let out = me.post(app.url("/api/v1/logout")).send().await.unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(
        me.get(app.url("/api/v1/me")).send().await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_per_account() {
    let app = spawn_app().await;
    let attempt = |password: &'static str| {
        app.anonymous
            .post(app.url("/api/v1/login"))
            .json(&json!({"username": "tester", "password": password}))
            .send()
    };
    for _ in 0..5 {
        let (status, body) = status_of(attempt("wrong password!").await.unwrap()).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_credentials");
    }
    // Now even the right password waits.
    let resp = attempt(PASSWORD).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    // An unknown user gets the same answer as a wrong password.
    let (status, body) = status_of(
        app.anonymous
            .post(app.url("/api/v1/login"))
            .json(&json!({"username": "nobody", "password": "whatever it is"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
}

#[tokio::test]
async fn roles_decide_what_each_person_may_do() {
    let app = spawn_app().await;
    for (name, role) in [("olive", "officer"), ("ana", "analyst"), ("adam", "admin")] {
        add_user(&app.records, name, role, "BB-01");
    }
    let officer = client_with(&login(&app.base, "olive").await);
    let analyst = client_with(&login(&app.base, "ana").await);
    let admin = client_with(&login(&app.base, "adam").await);

    // Officers enter and edit, and submit; they do not review or export.
    let resp = officer
        .post(app.url("/api/v1/records"))
        .json(&json!({"form": "boarding-report", "fields": report()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rec = app.url(&format!("/api/v1/records/{id}"));
    let (s, _) = status_of(
        officer
            .patch(&rec)
            .json(&json!({"status": "submitted"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body) = status_of(
        officer
            .patch(&rec)
            .json(&json!({"status": "reviewed"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (403, Some("forbidden")));
    let (s, _) = status_of(
        officer
            .get(app.url("/api/v1/export?format=csv"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403);

    // Analysts read and export, and write nothing.
    assert_eq!(analyst.get(&rec).send().await.unwrap().status(), 200);
    assert_eq!(
        analyst
            .get(app.url("/api/v1/export?format=jsonl"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (s, _) = status_of(
        analyst
            .patch(&rec)
            .json(&json!({"fields": {"arrests": 2}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403);

    // Admins manage people and read the audit log, not the records.
    assert_eq!(admin.get(&rec).send().await.unwrap().status(), 403);
    let (s, _) = status_of(
        admin
            .post(app.url("/api/v1/users"))
            .json(&json!({"username": "nina", "role": "officer", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201);
    login(&app.base, "nina").await;
    assert_eq!(
        officer
            .get(app.url("/api/v1/users"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // The supervisor reviews.
    let (s, _) = status_of(
        app.client
            .patch(&rec)
            .json(&json!({"status": "reviewed"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let view: Value = app
        .client
        .get(&rec)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "reviewed");
    assert_eq!(
        view["fields"]["arrests"], 0,
        "the analyst's refused edit left no trace"
    );
}

#[tokio::test]
async fn people_see_and_change_only_their_own_station() {
    // An HQ instance holding two stations' records.
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.station = "HQ".into();
    let records = open_records(&s).unwrap();
    let app = Application::with_records(&s, records.clone()).unwrap();
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run_until_stopped());
    // Records of two stations, as sync would have brought them.
    let mut ids = Vec::new();
    for station in ["BB-01", "LC-01"] {
        let boat_dir = tempfile::tempdir().unwrap();
        let mut bs = settings(boat_dir.path());
        bs.station = station.into();
        let boat = open_records(&bs).unwrap();
        let id = boat
            .create(
                tideline_sync::Author::Instance,
                "boarding-report",
                report().as_object().unwrap(),
            )
            .unwrap()
            .id;
        let doc = boat.automerge_bytes(&id).unwrap();
        let changes = automerge::AutoCommit::load(&doc).unwrap().get_changes(&[]);
        records
            .apply_remote(
                vec![tideline_sync::records::RemoteDoc::changes(id, changes)],
                |_| true,
                |_| Vec::new(),
            )
            .unwrap();
        ids.push(id.to_string());
    }
    add_user(&records, "bb", "supervisor", "BB-01");
    add_user(&records, "chief", "analyst", "HQ");
    let bb = client_with(&login(&base, "bb").await);
    let chief = client_with(&login(&base, "chief").await);

    let list = |c: reqwest::Client, q: &'static str| {
        let url = format!("{base}/api/v1/records{q}");
        async move {
            c.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mine = list(bb.clone(), "").await;
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["records"][0]["station"], "BB-01");
    assert_eq!(list(bb.clone(), "?station=LC-01").await["total"], 0);
    assert_eq!(list(chief.clone(), "").await["total"], 2);

    let theirs = format!("{base}/api/v1/records/{}", ids[1]);
    assert_eq!(bb.get(&theirs).send().await.unwrap().status(), 404);
    let resp = bb
        .patch(&theirs)
        .json(&json!({"fields": {"arrests": 5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(chief.get(&theirs).send().await.unwrap().status(), 200);
    let export = chief
        .get(format!("{base}/api/v1/export?format=jsonl"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 2);
    let export = bb
        .get(format!("{base}/api/v1/export?format=jsonl"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 1);
    // A BB-01 supervisor cannot create records on an HQ instance: they would be HQ's.
    let resp = bb
        .post(format!("{base}/api/v1/records"))
        .json(&json!({"form": "boarding-report", "fields": report()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn a_fresh_instance_is_set_up_once_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let records = open_records(&s).unwrap();
    let app = Application::with_records(&s, records).unwrap();
    let code = app
        .setup_code()
        .expect("a fresh instance has a setup code")
        .to_string();
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run_until_stopped());
    let c = reqwest::Client::new();
    let setup = |code: String, name: &'static str| {
        c.post(format!("{base}/api/v1/setup"))
            .json(&json!({"code": code, "username": name, "password": PASSWORD}))
            .send()
    };
    let (s1, _) = status_of(setup("WRONG-CODE-0000".into(), "root").await.unwrap()).await;
    assert_eq!(s1, 401);
    let (s2, body) = status_of(setup(code.clone(), "root").await.unwrap()).await;
    assert_eq!(s2, 201, "{body}");
    assert_eq!(body["role"], "admin");
    let (s3, body) = status_of(setup(code, "again").await.unwrap()).await;
    assert_eq!((s3, body["error"].as_str()), (409, Some("already_set_up")));
    login(&base, "root").await;
}

#[tokio::test]
async fn the_audit_log_records_logins_reads_writes_and_exports() {
    let app = spawn_app().await;
    add_user(&app.records, "adam", "admin", "BB-01");
    let id = app.create(&report()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.get(&format!("/api/v1/records/{id}")).await;
    app.patch_json(
        &format!("/api/v1/records/{id}"),
        &json!({"fields": {"arrests": 1}}),
    )
    .await;
    app.get("/api/v1/export?format=csv").await;
    app.anonymous
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": "tester", "password": "not the password"}))
        .send()
        .await
        .unwrap();

    let admin = client_with(&login(&app.base, "adam").await);
    let entries = |q: String| {
        let admin = admin.clone();
        let url = app.url(&format!("/api/v1/audit{q}"));
        async move {
            let body: Value = admin.get(url).send().await.unwrap().json().await.unwrap();
            body["entries"].as_array().unwrap().clone()
        }
    };
    let all = entries(String::new()).await;
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in [
        "login.success",
        "record.create",
        "record.view",
        "record.edit",
        "export",
        "login.failure",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let on_record = entries(format!("?target={id}")).await;
    assert_eq!(on_record.len(), 3);
    assert!(on_record.iter().all(|e| e["actor"] == "user:tester"));
    for pair in all.windows(2) {
        assert_eq!(pair[1]["prev"], pair[0]["hash"]);
    }
    // Only admins read it.
    assert_eq!(app.get("/api/v1/audit").await.status(), 403);
}

#[tokio::test]
async fn admins_manage_stations_and_people_and_changes_apply_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.station = "HQ".into();
    let records = open_records(&s).unwrap();
    add_user(&records, "root", "admin", "HQ");
    add_user(&records, "olive", "officer", "HQ");
    let app = Application::with_records(&s, records).unwrap();
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run_until_stopped());
    let admin = client_with(&login(&base, "root").await);

    // People and devices belong to stations that exist.
    let new_user =
        json!({"username": "bb", "role": "officer", "station": "BB-01", "password": PASSWORD});
    let resp = admin
        .post(format!("{base}/api/v1/users"))
        .json(&new_user)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let code = json!({"station": "BB-01", "kind": "station"});
    let resp = admin
        .post(format!("{base}/api/v1/devices/codes"))
        .json(&code)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let station = json!({"code": "BB-01", "name": "Bridgetown", "island": "Barbados"});
    let resp = admin
        .post(format!("{base}/api/v1/stations"))
        .json(&station)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = admin
        .post(format!("{base}/api/v1/stations"))
        .json(&station)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let resp = admin
        .post(format!("{base}/api/v1/users"))
        .json(&new_user)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = admin
        .post(format!("{base}/api/v1/devices/codes"))
        .json(&code)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let listed: Value = admin
        .get(format!("{base}/api/v1/stations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["stations"][0]["island"], "Barbados");

    // A role change ends the user's sessions; a disabled user cannot log in.
    let olive = client_with(&login(&base, "olive").await);
    assert_eq!(
        olive
            .get(format!("{base}/api/v1/records"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = admin
        .patch(format!("{base}/api/v1/users/olive"))
        .json(&json!({"role": "analyst"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        olive
            .get(format!("{base}/api/v1/records"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let me: Value = client_with(&login(&base, "olive").await)
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "analyst");
    admin
        .patch(format!("{base}/api/v1/users/olive"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": "olive", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let audit: Value = admin
        .get(format!(
            "{base}/api/v1/audit?action=user.update&target=olive"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["details"]["role"], "analyst");
    assert!(!audit.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn signing_in_never_sends_the_browser_to_another_site() {
    let app = spawn_app().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cases = [
        ("/\\evil.example/x", "/"),
        ("/\t/evil.example/x", "/"),
        ("/%5Cevil.example/x", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/x", "/"),
        ("/records?status=draft", "/records?status=draft"),
    ];
    for (next, expected) in cases {
        let resp = browser
            .post(app.url("/login"))
            .form(&[
                ("username", "tester"),
                ("password", PASSWORD),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{next:?}");
        assert_eq!(resp.headers()["location"], expected, "next = {next:?}");
        // The sign-in page carries the same rule into its form.
        let page = browser
            .get(app.url("/login"))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let expected_html = expected.replace('&', "&amp;");
        assert!(
            page.contains(&format!(r#"name="next" value="{expected_html}""#)),
            "next = {next:?}: {page}"
        );
    }
}

#[tokio::test]
async fn a_capitalised_user_name_signs_in_and_does_not_count_as_a_failure() {
    let app = spawn_app().await;
    for typed in ["Tester", "TESTER", " tester"] {
        for _ in 0..3 {
            let resp = app
                .anonymous
                .post(app.url("/api/v1/login"))
                .json(&json!({"username": typed, "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{typed:?}");
        }
    }
    let page = app
        .anonymous
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"autocapitalize="none""#), "{page}");
}

#[tokio::test]
async fn a_form_posted_after_the_session_ended_goes_to_sign_in_and_back_to_the_form() {
    let app = spawn_app().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (posted_to, back_to) in [
        (
            "/records/new?form=boarding-report",
            "/records/new%3Fform%3Dboarding-report",
        ),
        (
            "/records/0190a5c4-3b2e-7d41-9c0a-5e6f7a8b9c0d/edit",
            "/records/0190a5c4-3b2e-7d41-9c0a-5e6f7a8b9c0d/edit",
        ),
        ("/records/0190a5c4-3b2e-7d41-9c0a-5e6f7a8b9c0d/status", "/"),
    ] {
        let resp = browser
            .post(app.url(posted_to))
            .form(&[("f.vessel_name", "Sea Breeze")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{posted_to}");
        assert_eq!(
            resp.headers()["location"],
            format!("/login?expired=1&next={back_to}").as_str(),
            "{posted_to}"
        );
    }
    let page = browser
        .get(app.url("/login?expired=1&next=%2Frecords"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("kept in this browser"), "{page}");
    assert!(app
        .records
        .list(&Default::default(), 10, 0)
        .unwrap()
        .records
        .is_empty());
}

#[tokio::test]
async fn an_admin_adds_people_and_lifts_a_lockout_from_the_page() {
    let app = spawn_app().await;
    add_user(&app.records, "chief", "admin", "BB-01");
    let admin = client_with(&login(&app.base, "chief").await);
    let login = |name: &'static str, password: &'static str| {
        let (client, url) = (app.anonymous.clone(), app.url("/api/v1/login"));
        async move {
            client
                .post(url)
                .json(&json!({"username": name, "password": password}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let page = admin
        .post(app.url("/admin/users"))
        .form(&[
            ("username", "PC.James"),
            ("role", "officer"),
            ("station", "BB-01"),
            ("password", "ten characters at least"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    assert!(text.contains("Added officer pc.james of BB-01"), "{text}");
    assert!(text.contains(r#"data-user="pc.james""#), "{text}");
    assert_eq!(login("pc.james", "ten characters at least").await, 200);

    // Locked out at sea: the admin lifts it.
    for _ in 0..5 {
        assert_eq!(login("pc.james", "wrong password!").await, 401);
    }
    assert_eq!(login("pc.james", "ten characters at least").await, 429);
    let change = |what: &'static str, password: Option<&'static str>| {
        let (client, url) = (admin.clone(), app.url("/admin/users/pc.james"));
        async move {
            let mut form = vec![("change", what)];
            if let Some(p) = password {
                form.push(("password", p));
            }
            let resp = client.post(url).form(&form).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (status, text) = change("unlock", None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("pc.james may sign in again now"), "{text}");
    assert_eq!(login("pc.james", "ten characters at least").await, 200);
    for _ in 0..5 {
        login("pc.james", "wrong password!").await;
    }
    // A new password lifts the lockout too.
    let (status, text) = change("password", Some("a brand new password")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(login("pc.james", "a brand new password").await, 200);
    // Refusals are said on the page; nothing changes.
    let (status, text) = change("password", Some("short")).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains(r#"id="admin-notice""#), "{text}");
    assert_eq!(login("pc.james", "a brand new password").await, 200);
    // Disabled, then enabled again.
    assert_eq!(change("disable", None).await.0, 200);
    assert_eq!(login("pc.james", "a brand new password").await, 401);
    assert_eq!(change("enable", None).await.0, 200);
    assert_eq!(login("pc.james", "a brand new password").await, 200);
    // Officers do not manage people.
    let resp = app
        .client
        .post(app.url("/admin/users/pc.james"))
        .form(&[("change", "disable")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}
