//! The web interface in a real browser: Debian's Chromium driven through
//! chromedriver (WebDriver), against a boat and its station served in this
//! process. `.ci/run` installs both; set `CHROMEDRIVER` and `CHROMIUM` to
//! use others.
//!
//! An officer on the boat signs in, fills a boarding report with two crew
//! members, a seizure and a photo, submits it with the outcome missing,
//! sees the problem beside that field with everything typed still there,
//! fixes it and submits. The report syncs to the station, where the same
//! field was meanwhile changed on both sides; the supervisor there sees the
//! conflict with both values and their authors, keeps one with a click, and
//! the resolution reaches the boat.
//!
//! Screenshots of the main pages are written to `target/screenshots/`, and
//! to `docs/screenshots/` as well with `TIDELINE_UPDATE_SCREENSHOTS=1`.

mod relevance;
mod support;

use fantoccini::Locator;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;
use tideline_tests::{add_user, Instance, PASSWORD, TESTER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_reports_offline_and_a_supervisor_resolves_a_conflict_upstream() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat =
        Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &station.base).await;
    add_user(&boat.records, "officer", "officer", "BB-01");
    let driver = start_driver().await;
    let c = browser(&driver, &dirs[2].path().join("profile")).await;

    // The officer, on the boat.
    c.goto(&format!("{}/records", boat.base)).await.unwrap();
    arrive(&c, "/login").await;
    screenshot(&c, "login").await;
    sign_in(&c, &boat.base, "officer").await;
    assert!(css(&c, "#who")
        .await
        .text()
        .await
        .unwrap()
        .contains("officer"));
    press(&c, "a[href='/records/new?form=boarding-report']").await;
    arrive(&c, "/records/new").await;
    // On a 10-inch tablet held upright the form fits the width: no sideways scrolling.
    c.set_window_size(800, 1280).await.unwrap();
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        Value::Bool(true),
        "the entry form scrolls sideways on a tablet"
    );
    screenshot(&c, "entry-tablet").await;
    c.set_window_size(1280, 1000).await.unwrap();
    c.execute(
        "document.getElementById('f-boarding-time').value = '2026-11-20T14:05';",
        vec![],
    )
    .await
    .unwrap();
    type_into(&c, "#f-position-lat", "12.9843").await;
    type_into(&c, "#f-position-lon", "-61.2872").await;
    type_into(&c, "#f-vessel-name", "Sea Breeze").await;
    type_into(&c, "#f-vessel-registration", "SVG-1234").await;
    choose(&c, "#f-flag-state", "BB").await;
    choose(&c, "#f-vessel-type", "fishing").await;
    type_into(&c, "#f-persons-on-board", "3").await;
    choose(&c, "#f-reason", "routine_inspection").await;
    // Two crew members, added in place: no reload, and the cursor goes to
    // the new entry.
    c.execute("window.__stay = true;", vec![]).await.unwrap();
    click(&c, "#f-crew-add").await;
    type_into(&c, "#f-crew-0--name", "John Baptiste").await;
    choose(&c, "#f-crew-0--role", "master").await;
    click(&c, "#f-crew-add").await;
    let focused = c
        .execute("return document.activeElement.id;", vec![])
        .await
        .unwrap();
    assert_eq!(
        focused,
        json!("f-crew-1--name"),
        "focus is not on the new entry"
    );
    type_into(&c, "#f-crew-1--name", "Mary Joseph").await;
    // A third, removed again: the others keep their numbers and values.
    click(&c, "#f-crew-add").await;
    let legends = c
        .execute(
            "return Array.from(document.querySelectorAll('#f-crew > fieldset.item > legend')).map(l => l.textContent);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        legends,
        json!(["Crew member 1", "Crew member 2", "Crew member 3"])
    );
    assert_eq!(
        words(
            &css(&c, "#f-crew-2- button[data-remove]")
                .await
                .text()
                .await
                .unwrap()
        ),
        "Remove crew member 3"
    );
    click(&c, "#f-crew-2- button[data-remove]").await;
    assert!(c.find(Locator::Css("#f-crew-2-")).await.is_err());
    assert_eq!(
        c.execute("return window.__stay === true;", vec![])
            .await
            .unwrap(),
        Value::Bool(true),
        "adding or removing crew reloaded the page"
    );
    choose(&c, "#f-crew-1--role", "crew").await;
    assert_eq!(value_of(&c, "#f-vessel-name").await, "Sea Breeze");
    assert_eq!(value_of(&c, "#f-crew-0--name").await, "John Baptiste");
    let missing = unlabelled(&c).await;
    assert!(missing.is_empty(), "inputs without a label: {missing:?}");
    click(&c, "#f-contraband-found-yes").await;
    click(&c, "#f-seizures-add").await;
    assert_eq!(
        words(
            &css(&c, "#f-seizures-0- button[data-remove]")
                .await
                .text()
                .await
                .unwrap()
        ),
        "Remove seizure 1"
    );
    choose(&c, "#f-seizures-0--item-type", "narcotics").await;
    type_into(&c, "#f-seizures-0--description", "Compressed packages").await;
    type_into(&c, "#f-seizures-0--quantity", "12.5").await;
    type_into(&c, "#f-seizures-0--unit", "kg").await;
    type_into(&c, "#f-seizures-0--evidence-tag", "EV-0042").await;
    type_into(&c, "#f-findings", "Packages under the forward hatch.").await;
    type_into(&c, "#f-officers", "Sgt. Charles").await;
    let photo = deck_photo(dirs[2].path());
    type_into(&c, "#f-photos", photo.to_str().unwrap()).await;
    // The outcome is forgotten.
    press(&c, "#submit").await;
    let problem = css(&c, "#f-outcome-error").await.text().await.unwrap();
    assert!(problem.contains("required"), "{problem}");
    let listed = css(&c, "#problems").await.text().await.unwrap();
    assert_eq!(
        css(&c, "#problems")
            .await
            .find_all(Locator::Css("li"))
            .await
            .unwrap()
            .len(),
        1,
        "exactly one problem is listed: {listed}"
    );
    assert_eq!(
        css(&c, "#f-outcome")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    // Everything typed is still there (and already saved as a draft).
    assert_eq!(value_of(&c, "#f-vessel-name").await, "Sea Breeze");
    assert_eq!(value_of(&c, "#f-crew-1--name").await, "Mary Joseph");
    assert_eq!(value_of(&c, "#f-seizures-0--quantity").await, "12.5");
    screenshot(&c, "entry-with-error").await;
    choose(&c, "#f-outcome", "detained").await;
    press(&c, "#submit").await;
    let path = arrive(&c, "/records/0").await;
    let id = path.trim_start_matches("/records/").to_string();
    assert_eq!(css(&c, "#status").await.text().await.unwrap(), "submitted");
    let on_boat = boat.get(&id).await;
    assert_eq!(on_boat["fields"]["crew"].as_array().unwrap().len(), 2);
    assert_eq!(on_boat["fields"]["seizures"][0]["quantity"], 12.5);
    assert_eq!(on_boat["fields"]["outcome"], "detained");
    assert_eq!(on_boat["attachments"][0]["mime"], "image/png");
    assert_eq!(
        on_boat["fields"]["photos"][0],
        on_boat["attachments"][0]["sha256"]
    );
    let history = css(&c, "table.history").await.text().await.unwrap();
    assert!(history.contains("officer on this instance"), "{history}");
    assert!(
        history.contains("Outcome"),
        "the submit names the field: {history}"
    );
    screenshot(&c, "record").await;

    // The report goes up; then the outcome is changed on both sides at once.
    boat.sync_ok().await;
    boat.patch(&id, json!({"outcome": "escorted_to_port"}))
        .await;
    station
        .patch(&id, json!({"outcome": "warning_issued"}))
        .await;
    boat.sync_ok().await;
    c.goto(&format!("{}/records", boat.base)).await.unwrap();
    let indicator = css(&c, "#sync-last").await.text().await.unwrap();
    assert!(!indicator.contains("never"), "{indicator}");
    assert!(css(&c, "#sync-pending")
        .await
        .text()
        .await
        .unwrap()
        .starts_with('0'));
    screenshot(&c, "records").await;
    let missing = unlabelled(&c).await;
    assert!(missing.is_empty(), "inputs without a label: {missing:?}");

    // The supervisor, at the station.
    sign_in(&c, &station.base, "tester").await;
    type_into(&c, "#q", "sea breeze").await;
    press(&c, ".filters button[type=submit]").await;
    assert!(css(&c, "#count")
        .await
        .text()
        .await
        .unwrap()
        .contains("of 1 record"));
    press(&c, &format!("a[href='/records/{id}']")).await;
    arrive(&c, "/records/0").await;
    let conflict = css(&c, ".conflict[data-path='outcome']").await;
    let text = conflict.text().await.unwrap();
    assert!(
        text.contains("Escorted to port") && text.contains("Warning issued"),
        "{text}"
    );
    assert!(
        text.contains("this instance") && text.contains("boat of BB-01"),
        "{text}"
    );
    // People, not only devices: who on which device wrote each value.
    assert!(
        text.contains("tester on this instance") && text.contains("tester on boat (boat of BB-01)"),
        "{text}"
    );
    screenshot(&c, "conflict").await;
    let keep = conflict.find_all(Locator::Css("li")).await.unwrap();
    let mut chosen = None;
    for li in keep {
        if li.text().await.unwrap().contains("Escorted to port") {
            li.find(Locator::Css("button"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            chosen = Some(());
            break;
        }
    }
    assert!(chosen.is_some(), "a button to keep the boat's value");
    // The same address comes back: wait for the page without the conflict.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.find(Locator::Css("#conflicts")).await.is_ok() {
        assert!(Instant::now() < deadline, "the conflict is still shown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let history = css(&c, "table.history").await.text().await.unwrap();
    assert!(history.contains("resolved a conflict"), "{history}");
    assert!(history.contains("tester on this instance"), "{history}");
    assert!(
        history.contains("officer on boat (boat of BB-01)"),
        "{history}"
    );

    // The map shows the boarding.
    c.goto(&format!("{}/map", station.base)).await.unwrap();
    css(&c, "#map[data-markers='1']").await;
    // Land drawn with no network: the region's coastlines come with the instance.
    css(&c, "#map[data-coast]").await;
    let coast = css(&c, "#map").await.attr("data-coast").await.unwrap();
    assert!(
        coast
            .as_deref()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            > 10,
        "no coastlines on the map: {coast:?}"
    );
    assert!(css(&c, "#map-tiles-note")
        .await
        .text()
        .await
        .unwrap()
        .contains("grid"));
    screenshot(&c, "map").await;

    // The resolution reaches the boat.
    boat.sync_ok().await;
    let back: Value = boat.get(&id).await;
    assert_eq!(back["fields"]["outcome"], "escorted_to_port");

    // The station's admin sees people and devices, and enrols a new boat.
    add_user(&station.records, "chief", "admin", "BB-01");
    c.goto(&format!("{}/login", station.base)).await.unwrap();
    type_into(&c, "#username", "chief").await;
    type_into(&c, "#password", PASSWORD).await;
    press(&c, "button[type=submit]").await;
    arrive(&c, "/admin").await;
    let devices = css(&c, "#devices-h + table").await.text().await.unwrap();
    assert!(
        devices.contains("boat") && devices.contains("active"),
        "{devices}"
    );
    choose(&c, "#e-kind", "boat").await;
    press(&c, "form[action='/admin/enroll-code'] button").await;
    let issued = css(&c, "#enrol-code").await.text().await.unwrap();
    // The exact command, station and this instance's address included.
    let command = css(&c, "#enrol-command").await.text().await.unwrap();
    assert!(
        issued.contains("BB-01")
            && words(&command).starts_with(&format!(
                "tideline --data DATA_DIR --station BB-01 enroll --upstream {} --code ",
                station.base
            )),
        "{issued}"
    );
    screenshot(&c, "admin").await;

    // A phone for ODK Collect: its QR code and link, shown once, work at
    // once; revoked from the page, the link stops.
    choose(&c, "#p-user", TESTER).await;
    type_into(&c, "#p-name", "Kestrel 2").await;
    press(&c, "form[action='/admin/phones'] button").await;
    assert!(css(&c, "#phone-qr svg").await.is_displayed().await.unwrap());
    let link = css(&c, "#phone-url").await.text().await.unwrap();
    assert!(
        link.starts_with(&format!("{}/v1/key/tlp.", station.base)),
        "{link}"
    );
    let list = reqwest::get(format!("{link}/formList")).await.unwrap();
    assert_eq!(list.status(), 200);
    screenshot(&c, "admin-phone").await;
    press(&c, "tr[data-phone] form button").await;
    let phones = css(&c, "#phones-h + table").await.text().await.unwrap();
    assert!(phones.contains("revoked"), "{phones}");
    let list = reqwest::get(format!("{link}/formList")).await.unwrap();
    assert_eq!(list.status(), 401);

    // The boat is found by its name and revoked from the page.
    assert!(devices.contains("boat"), "{devices}");
    press(&c, "#devices-h + table tr[data-device] form button").await;
    let devices = css(&c, "#devices-h + table").await.text().await.unwrap();
    assert!(devices.contains("revoked"), "{devices}");
    let (status, body) = boat.sync_now().await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    assert!(back["conflicts"].as_object().unwrap().is_empty(), "{back}");
    c.close().await.unwrap();
}

/// Wait until `selector` is on the page (the page's script may post it back first).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_typed_is_lost_to_an_ended_session_a_restart_a_closed_tab_or_bad_values() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut boat = Instance::start("boat", dirs[0].path(), "BB-01").await;
    add_user(&boat.records, "officer", "officer", "BB-01");
    let driver = start_driver().await;
    let c = browser(&driver, &dirs[1].path().join("profile")).await;
    // A 10-inch tablet held upright.
    c.set_window_size(800, 1280).await.unwrap();
    sign_in(&c, &boat.base, "officer").await;
    let new_form = format!("{}/records/new?form=boarding-report", boat.base);

    // The session ends while the report is being typed (signed out from
    // elsewhere); Save draft lands on the sign-in page, which says why.
    c.goto(&new_form).await.unwrap();
    type_into(&c, "#f-vessel-name", "Kestrel Find").await;
    type_into(&c, "#f-findings", "Nets checked, two coolers of conch.").await;
    let cookie = c.get_named_cookie("tideline_session").await.unwrap();
    let out = reqwest::Client::new()
        .post(boat.url("/api/v1/logout"))
        .bearer_auth(cookie.value())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    press(&c, "#save-draft").await;
    arrive(&c, "/login").await;
    let why = shown(&c, "#expired").await;
    assert!(why.contains("kept in this browser"), "{why}");
    type_into(&c, "#username", "Officer").await;
    type_into(&c, "#password", PASSWORD).await;
    press(&c, "button[type=submit]").await;
    // Back at the form, with everything typed.
    arrive(&c, "/records/new").await;
    let restored = shown(&c, "#restored").await;
    assert!(restored.contains("not saved yet"), "{restored}");
    assert_eq!(value_of(&c, "#f-vessel-name").await, "Kestrel Find");
    assert_eq!(
        value_of(&c, "#f-findings").await,
        "Nets checked, two coolers of conch."
    );
    screenshot(&c, "entry-restored").await;
    press(&c, "#save-draft").await;
    arrive(&c, "/records/0").await;
    let saved = record_named(&boat, "Kestrel Find")
        .await
        .expect("the draft");
    assert_eq!(saved["status"], "draft");
    assert_eq!(
        saved["fields"]["findings"],
        "Nets checked, two coolers of conch."
    );

    // Saved, the copy in the browser is gone: a new form opens empty.
    c.goto(&new_form).await.unwrap();
    css(&c, "form.entry[data-drawn=opened]").await;
    assert!(c.find(Locator::Css("#restored")).await.is_err());
    assert_eq!(value_of(&c, "#f-vessel-name").await, "");

    // The boat's server restarts while the officer types: the session
    // survives and Save draft just works.
    type_into(&c, "#f-vessel-name", "Second Wind").await;
    boat.stop().await;
    boat.restart().await;
    press(&c, "#save-draft").await;
    arrive(&c, "/records/0").await;
    assert!(record_named(&boat, "Second Wind").await.is_some());

    // A tab closed mid-report (here: the officer goes elsewhere without
    // saving): opening the form again brings it back.
    c.goto(&new_form).await.unwrap();
    type_into(&c, "#f-vessel-name", "Fourth Watch").await;
    type_into(&c, "#f-vessel-registration", "SVG-4444").await;
    c.goto(&format!("{}/records", boat.base)).await.unwrap();
    c.goto(&new_form).await.unwrap();
    shown(&c, "#restored").await;
    assert_eq!(value_of(&c, "#f-vessel-name").await, "Fourth Watch");
    assert_eq!(value_of(&c, "#f-vessel-registration").await, "SVG-4444");

    // Submit with a word where a number goes, a value a rule refuses and a
    // required answer missing: every problem at once, the rest saved as a
    // draft, and what was typed still there to correct.
    type_into(&c, "#f-persons-on-board", "-1").await;
    type_into(&c, "#f-arrests", "two").await;
    press(&c, "#submit").await;
    let problems = shown(&c, "#problems").await;
    for expected in ["Arrests", "Persons on board", "Outcome"] {
        assert!(
            problems.contains(expected),
            "{expected} is not listed: {problems}"
        );
    }
    assert!(css(&c, "#f-arrests-error").await.text().await.is_ok());
    assert_eq!(value_of(&c, "#f-arrests").await, "two");
    assert_eq!(value_of(&c, "#f-persons-on-board").await, "-1");
    let draft = record_named(&boat, "Fourth Watch")
        .await
        .expect("saved as a draft");
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["fields"]["vessel_registration"], "SVG-4444");
    assert!(draft["fields"].get("arrests").is_none(), "{draft}");
    assert!(draft["fields"].get("persons_on_board").is_none(), "{draft}");
    screenshot(&c, "entry-problems-at-once").await;

    // A photo over the limit with a new report: as soon as it is chosen
    // the page names the file and the limit, and the report saves.
    c.goto(&new_form).await.unwrap();
    css(&c, "form.entry[data-drawn=opened]").await;
    if c.find(Locator::Css("#restored")).await.is_ok() {
        click(&c, "#restored a[data-discard]").await;
        css(&c, "form.entry[data-drawn=opened]").await;
    }
    type_into(&c, "#f-vessel-name", "Big Photo").await;
    let big = dirs[1].path().join("big.jpg");
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.resize(30 * 1024 * 1024, 7);
    std::fs::write(&big, jpeg).unwrap();
    type_into(&c, "#f-photos", big.to_str().unwrap()).await;
    let said = shown(&c, "#f-photos-error").await;
    assert!(
        said.contains("big.jpg is 30 MB") && said.contains("at most 25 MB"),
        "{said}"
    );
    press(&c, "#save-draft").await;
    arrive(&c, "/records/0").await;
    let kept = record_named(&boat, "Big Photo").await.expect("the report");
    assert_eq!(kept["attachments"], json!([]));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_bar_says_when_a_boat_was_revoked_and_sync_now_shows_the_outcome() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat =
        Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &station.base).await;
    add_user(&boat.records, "officer", "officer", "BB-01");
    boat.create("boarding-report", tideline_tests::report("Sea Breeze"))
        .await;
    let driver = start_driver().await;
    let c = browser(&driver, &dirs[2].path().join("profile")).await;
    c.set_window_size(800, 1280).await.unwrap();
    sign_in(&c, &boat.base, "officer").await;

    // Sync now says what it moved.
    click(&c, "#sync-now").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let said = loop {
        let text = shown(&c, "#sync-result").await;
        if text.starts_with("Sync done") || text.starts_with("Sync failed") {
            break text;
        }
        assert!(Instant::now() < deadline, "Sync now said nothing: {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(said, "Sync done: 1 record(s) sent, 0 received.");

    // The station's admin revokes the boat.
    let devices = tideline_server::auth::devices::list(station.records.store().as_ref()).unwrap();
    assert_eq!(devices.len(), 1);
    tideline_server::auth::devices::revoke(station.records.store().as_ref(), &devices[0].id)
        .unwrap();
    click(&c, "#sync-now").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let said = loop {
        let text = shown(&c, "#sync-result").await;
        if text.starts_with("Sync failed") {
            break text;
        }
        assert!(Instant::now() < deadline, "Sync now said nothing: {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(said.contains("revoked"), "{said}");
    // The bar itself: refused, not offline, with the reason in plain sight.
    c.goto(&format!("{}/records", boat.base)).await.unwrap();
    css(&c, "#sync[data-state=refused][data-kind=revoked]").await;
    let bar = shown(&c, "#sync-state").await;
    assert!(
        bar.contains("Sync refused") && bar.contains("revoked") && bar.contains("enrol it again"),
        "{bar}"
    );
    assert!(!bar.contains("cannot be reached"), "{bar}");
    screenshot(&c, "sync-revoked").await;
    c.close().await.unwrap();
}

/// A Chrome DevTools command through chromedriver (`goog/cdp/execute`):
/// what WebDriver itself cannot do, such as giving the page a position.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}

/// On a boat's LAN with `tideline tls init`'s CA trusted (installed in the
/// browser's certificate store, as a tablet does), the entry page is a
/// secure context and "Use this device's position" fills the position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_with_the_local_ca_trusted_the_tablet_gives_its_position() {
    let certutil = std::env::var("CERTUTIL").unwrap_or_else(|_| "/usr/bin/certutil".into());
    assert!(
        Path::new(&certutil).exists(),
        "{certutil} is missing: install Debian's libnss3-tools (as .ci/run does) or set CERTUTIL"
    );
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let files = tideline_server::local_tls::init(
        dirs[0].path(),
        &["localhost".to_string()],
        &["127.0.0.1".parse().unwrap()],
        false,
    )
    .unwrap();
    let boat = Instance::start_tls(
        "boat",
        dirs[0].path(),
        "BB-01",
        &files.cert,
        &files.key,
        &files.ca,
    )
    .await;
    add_user(&boat.records, "officer", "officer", "BB-01");
    // The CA in the browser's own store, as Settings → Install a certificate does.
    let home = dirs[1].path();
    let nss = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nss).unwrap();
    let db = format!("sql:{}", nss.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec![
            "-A",
            "-d",
            &db,
            "-t",
            "C,,",
            "-n",
            "Tideline CA",
            "-i",
            files.ca.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(&certutil).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let driver = start_driver_with(&[("HOME", home.as_os_str())]).await;
    let c = browser(&driver, &dirs[2].path().join("profile")).await;
    c.set_window_size(800, 1280).await.unwrap();
    sign_in(&c, &boat.base, "officer").await;
    c.goto(&format!("{}/records/new?form=boarding-report", boat.base))
        .await
        .unwrap();
    let secure = c
        .execute("return window.isSecureContext;", vec![])
        .await
        .unwrap();
    assert_eq!(
        secure,
        Value::Bool(true),
        "the page is not a secure context"
    );
    // The tablet's GPS, and the permission its owner gives once.
    for (cmd, params) in [
        (
            "Browser.grantPermissions",
            json!({"origin": boat.base, "permissions": ["geolocation"]}),
        ),
        (
            "Emulation.setGeolocationOverride",
            json!({"latitude": 13.0969, "longitude": -59.6145, "accuracy": 8}),
        ),
    ] {
        c.issue_cmd(Cdp { cmd, params }).await.unwrap();
    }
    click(&c, "button[data-geolocate]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while value_of(&c, "#f-position-lat").await.is_empty() {
        let said = shown(&c, "#f-position-geo").await;
        assert!(Instant::now() < deadline, "no position: {said}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(value_of(&c, "#f-position-lat").await, "13.096900");
    assert_eq!(value_of(&c, "#f-position-lon").await, "-59.614500");
    let said = shown(&c, "#f-position-geo").await;
    assert!(said.starts_with("Position set"), "{said}");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_uploads_on_its_own_as_it_is_chosen_through_a_link_that_drops() {
    use tideline_tests::proxy::{FaultPlan, FaultProxy, Link, ProxyConfig};
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let boat = Instance::start("boat", dirs[0].path(), "BB-01").await;
    add_user(&boat.records, "officer", "officer", "BB-01");
    // The tablet reaches the boat's server over a Wi-Fi link (the proxy).
    let addr = boat.base.trim_start_matches("http://").parse().unwrap();
    let wifi = FaultProxy::start(addr, ProxyConfig::default())
        .await
        .unwrap();
    let base = wifi.url();
    let driver = start_driver().await;
    let c = browser(&driver, &dirs[1].path().join("profile")).await;
    c.set_window_size(800, 1280).await.unwrap();
    sign_in(&c, &base, "officer").await;
    c.goto(&format!("{base}/records/new?form=boarding-report"))
        .await
        .unwrap();
    type_into(&c, "#f-vessel-name", "Photo Watch").await;

    // The link now drops every connection after 1.2 to 3 MB, and is slow
    // enough to watch a photo go.
    wifi.set_faults(FaultPlan {
        cut_probability: 1.0,
        to_server_share: 1.0,
        offsets: 1_200_000..=3_000_000,
    });
    wifi.set_links(Link::CLEAN.with_throttle(2_000_000), Link::CLEAN);
    wifi.drop_connections();
    let photo = random_jpeg(
        &dirs[1].path().join("hold.jpg"),
        5 * 1024 * 1024 + 12_345,
        7,
    );
    let hash = tideline_sync::blobs::BlobHash::of(&photo).to_hex();
    type_into(
        &c,
        "#f-photos",
        dirs[1].path().join("hold.jpg").to_str().unwrap(),
    )
    .await;
    // Progress is shown as it goes.
    let part = until(
        &c,
        "const p = document.querySelector('li.uploading progress'); \
         return p && p.value > 0 && p.value < p.max ? p.value / p.max : null;",
        "progress shown part-way",
        30,
    )
    .await;
    assert!(part.as_f64().unwrap() < 1.0, "{part}");
    let said = until(
        &c,
        "const li = document.querySelector('li.uploaded'); return li ? li.textContent.trim() : null;",
        "the photo finished uploading",
        90,
    )
    .await;
    assert_eq!(
        said,
        "hold.jpg: uploaded; attached when the report is saved"
    );
    assert!(
        wifi.stats().cuts_to_server >= 2,
        "the link dropped mid-photo: {:?}",
        wifi.stats()
    );
    let kept = until(
        &c,
        "const h = document.querySelector('li.uploaded input[type=hidden][name=\"f.photos\"]'); \
         return h ? h.value : null;",
        "the photo's hash in the form",
        5,
    )
    .await;
    assert_eq!(kept, hash.as_str());
    // The file input no longer posts a file.
    let named = c
        .execute(
            "return document.getElementById('f-photos').getAttribute('name');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(named, Value::Null);

    // Saving sends the report, not the photo again.
    wifi.set_faults(FaultPlan::none());
    wifi.set_links(Link::CLEAN, Link::CLEAN);
    wifi.drop_connections();
    let before = wifi.stats().bytes_to_server;
    press(&c, "#save-draft").await;
    let path = arrive(&c, "/records/0").await;
    let sent = wifi.stats().bytes_to_server - before;
    assert!(
        sent < 100_000,
        "the save and the record page took {sent} bytes to the server; the photo is {}",
        photo.len()
    );
    let id = path.trim_start_matches("/records/").to_string();
    let view = boat.get(&id).await;
    assert_eq!(view["fields"]["vessel_name"], "Photo Watch");
    assert_eq!(view["fields"]["photos"], json!([hash]));
    assert_eq!(view["attachments"][0]["name"], "hold.jpg");
    let (_, served) = boat.blob(&hash).await;
    assert!(
        served.as_slice() == photo.as_slice(),
        "the stored photo differs"
    );

    // On the saved report, Save pressed while a photo is still on its way
    // waits for it, and says so.
    c.goto(&format!("{base}/records/{id}/edit")).await.unwrap();
    css(&c, "form.entry[data-record]").await;
    wifi.set_links(Link::CLEAN.with_throttle(1_000_000), Link::CLEAN);
    wifi.drop_connections();
    let stern = random_jpeg(&dirs[1].path().join("stern.jpg"), 3 * 1024 * 1024, 8);
    type_into(
        &c,
        "#f-photos",
        dirs[1].path().join("stern.jpg").to_str().unwrap(),
    )
    .await;
    css(&c, "li.uploading").await;
    click(&c, "#save-draft").await;
    let waiting = until(
        &c,
        "const w = document.getElementById('uploads-waiting'); \
         return w && !w.hidden ? w.textContent : null;",
        "the save waiting for the photo",
        10,
    )
    .await;
    assert_eq!(
        waiting,
        "Waiting for 1 photo(s) to finish uploading; the report is saved as soon as they have."
    );
    let record_page = format!("/records/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.current_url().await.unwrap().path() != record_page {
        assert!(Instant::now() < deadline, "the save never happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = boat.get(&id).await;
    assert_eq!(
        view["fields"]["photos"],
        json!([hash, tideline_sync::blobs::BlobHash::of(&stern).to_hex()])
    );
    assert_eq!(view["attachments"][1]["name"], "stern.jpg");
    c.close().await.unwrap();
}
