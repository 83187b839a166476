//! A recording HTTP proxy for sync links: it forwards every request to its
//! target unchanged and decodes each `/sync/v1` exchange on the way, so a
//! test can assert what crossed the wire (a record named twice in one push or
//! one pull page, say) rather than what either end says about it.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tideline_sync::protocol::{decode_request, decode_response, DocChanges, Limits};

/// What the tap saw of the `/sync/v1` exchanges it carried.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub exchanges: usize,
    /// Records pushed in a request that names them twice (one entry per extra copy).
    pub pushed_twice: Vec<String>,
    /// Records pulled in a response that names them twice.
    pub pulled_twice: Vec<String>,
    /// Bodies that did not decode as sync messages.
    pub undecodable: usize,
}

struct Shared {
    target: String,
    client: reqwest::Client,
    seen: Mutex<Seen>,
}

pub struct Tap {
    base: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

fn twice(docs: &[DocChanges]) -> Vec<String> {
    let mut ids = HashSet::new();
    docs.iter()
        .filter(|d| !ids.insert(d.id.as_str()))
        .map(|d| d.id.clone())
        .collect()
}

/// Headers that describe one hop, not the message.
const HOP: [&str; 5] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

async fn forward(
    shared: web::Data<Arc<Shared>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut out = shared
        .client
        .request(method, format!("{}{}", shared.target, path));
    for (name, value) in req.headers() {
        if !HOP.contains(&name.as_str()) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let exchange = req.path() == "/sync/v1";
    let sent = exchange.then(|| decode_request(&body, &Limits::default()));
    let resp = match out.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let status = resp.status().as_u16();
    let headers: Vec<(String, Vec<u8>)> = resp
        .headers()
        .iter()
        .filter(|(n, _)| !HOP.contains(&n.as_str()))
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    if let Some(sent) = sent {
        let mut seen = shared.seen.lock().unwrap();
        seen.exchanges += 1;
        match sent {
            Ok(request) => seen.pushed_twice.extend(twice(&request.push)),
            Err(_) => seen.undecodable += 1,
        }
        if status == 200 {
            match decode_response(&bytes, &Limits::default()) {
                Ok(response) => seen.pulled_twice.extend(twice(&response.pull)),
                Err(_) => seen.undecodable += 1,
            }
        }
    }
    let mut answer = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
    );
    for (name, value) in headers {
        answer.append_header((name, value));
    }
    answer.body(bytes)
}

impl Tap {
    /// Listen on a loopback port and forward to `target` (`http://host:port`).
    pub async fn start(target: &str) -> Tap {
        let shared = Arc::new(Shared {
            target: target.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            seen: Mutex::new(Seen::default()),
        });
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(forward))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .expect("bind the tap");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Tap {
            base: format!("http://{addr}"),
            shared,
            handle,
        }
    }

    /// The address to give a downstream as its upstream.
    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn seen(&self) -> Seen {
        self.shared.seen.lock().unwrap().clone()
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}
