//! What the browser tests share: chromedriver and Chromium started for a
//! test and stopped however it ends, waiting for elements and pages with a
//! deadline, typing and clicking, signing in, screenshots and fixtures.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tideline_tests::{Instance, PASSWORD};

/// chromedriver, killed when the test ends however it ends.
pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_driver() -> Driver {
    start_driver_with(&[]).await
}

/// chromedriver with extra environment (a HOME whose NSS database trusts a CA).
pub(crate) async fn start_driver_with(env: &[(&str, &std::ffi::OsStr)]) -> Driver {
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        Path::new(&bin).exists(),
        "{bin} is missing: install Debian's chromium and chromium-driver (as .ci/run does) \
         or set CHROMEDRIVER"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .envs(env.iter().copied())
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

pub(crate) async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // As root in a container, with no network beyond loopback.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

pub(crate) async fn css(c: &Client, selector: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(selector))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let url = c.current_url().await.ok();
            let page = c.source().await.unwrap_or_default();
            panic!("no {selector} on {url:?}: {e}\n{page}")
        }
    }
}

pub(crate) async fn type_into(c: &Client, selector: &str, text: &str) {
    css(c, selector).await.send_keys(text).await.unwrap();
}

pub(crate) async fn choose(c: &Client, selector: &str, value: &str) {
    css(c, selector).await.select_by_value(value).await.unwrap();
}

pub(crate) async fn click(c: &Client, selector: &str) {
    css(c, selector).await.click().await.unwrap();
}

/// Click something that loads a new page, and wait until it has loaded (the
/// address alone cannot tell: a form often comes back to the same one).
pub(crate) async fn press(c: &Client, selector: &str) {
    c.execute("window.__before = true;", vec![]).await.unwrap();
    click(c, selector).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let loaded = c
            .execute(
                "return window.__before === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await
            .unwrap_or(Value::Bool(false));
        if loaded == Value::Bool(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no new page after clicking {selector}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Text as one line, however the page wraps it.
pub(crate) fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) async fn value_of(c: &Client, selector: &str) -> String {
    css(c, selector)
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Wait until the page's path starts with `prefix`.
pub(crate) async fn arrive(c: &Client, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = c.current_url().await.unwrap();
        if url.path().starts_with(prefix) {
            return url.path().to_string();
        }
        assert!(Instant::now() < deadline, "still at {url}, wanted {prefix}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inputs a screen reader could not name: no label, no aria-label.
pub(crate) async fn unlabelled(c: &Client) -> Vec<Value> {
    let found = c
        .execute(
            "return Array.from(document.querySelectorAll(\
               'input:not([type=hidden]), select, textarea'))\
             .filter(e => !e.closest('[aria-hidden=true]'))\
             .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))\
             .map(e => e.name || e.id);",
            vec![],
        )
        .await
        .unwrap();
    found.as_array().cloned().unwrap_or_default()
}

pub(crate) async fn sign_in(c: &Client, base: &str, user: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    type_into(c, "#username", user).await;
    type_into(c, "#password", PASSWORD).await;
    press(c, "button[type=submit]").await;
    arrive(c, "/records").await;
}

pub(crate) fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

pub(crate) async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("TIDELINE_UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

/// A small PNG (the type is checked from its bytes).
pub(crate) fn deck_photo(dir: &Path) -> PathBuf {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    png.extend([9u8; 4000]);
    let path = dir.join("deck.png");
    std::fs::write(&path, png).unwrap();
    path
}

pub(crate) async fn shown(c: &Client, selector: &str) -> String {
    css(c, selector).await.text().await.unwrap()
}

pub(crate) async fn record_named(inst: &Instance, vessel: &str) -> Option<Value> {
    inst.all()
        .await
        .into_iter()
        .find(|v| v["fields"]["vessel_name"] == vessel)
}

/// A photo of `size` bytes that do not compress (as a real one), typed as a
/// JPEG by its first bytes.
pub(crate) fn random_jpeg(path: &Path, size: usize, seed: u64) -> Vec<u8> {
    let mut rng = tideline_tests::proxy::SplitMix64::new(seed);
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F'];
    while bytes.len() < size {
        bytes.extend(rng.next_u64().to_le_bytes());
    }
    bytes.truncate(size);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Poll `script` (which returns null until what it waits for is there)
/// until it returns something, or fail after `secs` naming `what`.
pub(crate) async fn until(c: &Client, script: &str, what: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = c.execute(script, vec![]).await.unwrap();
        if !got.is_null() {
            return got;
        }
        if Instant::now() >= deadline {
            let page = c.source().await.unwrap_or_default();
            panic!("{what} did not happen in {secs} s\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
