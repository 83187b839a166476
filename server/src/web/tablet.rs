//! `/tablet`: how a tablet comes to trust this instance's HTTPS, with the
//! local CA to download (`/ca.pem`) and a QR code of its address, so an
//! officer sets a tablet up by pointing its camera at the laptop's screen.
//! Both answer without a session: a certificate is public, and a tablet that
//! does not trust the instance yet cannot sign in comfortably.

use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, PreEscaped};

/// `GET /ca.pem`: the CA `tideline tls init` made, if it did.
pub async fn ca(state: web::Data<AppState>) -> HttpResponse {
    match std::fs::read(crate::local_tls::files(&state.data_dir).ca) {
        Ok(pem) => HttpResponse::Ok()
            .content_type("application/x-x509-ca-cert")
            .insert_header((
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tideline-ca.crt\"",
            ))
            .body(pem),
        Err(_) => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("This instance has no local CA; its admin makes one with `tideline tls init`."),
    }
}

/// `GET /tablet`
pub async fn page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let ca_url = format!("{}/ca.pem", crate::links::origin(&req));
    let has_ca = crate::local_tls::files(&state.data_dir).ca.is_file();
    let qr = qrcode::QrCode::new(ca_url.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(220, 220)
                .build()
        })
        .unwrap_or_default();
    let markup = super::page::bare(
        "Set up a tablet",
        html! {
            h1 { "Set up a tablet" }
            @if !has_ca {
                p.error role="alert" {
                    "This instance has no certificate of its own yet. Its admin runs "
                    code { "tideline tls init --name HOST --ip ADDRESS" }
                    " and restarts it; then this page offers the certificate."
                }
            } @else {
                p {
                    "Tablets give the entry form the device's position only over HTTPS they trust. "
                    "Install this instance's certificate authority once on each tablet:"
                }
                figure #ca-qr {
                    (PreEscaped(qr))
                    figcaption { "Scan with the tablet's camera, or open " a href="/ca.pem" { (ca_url) } }
                }
                h2 { "Android" }
                ol {
                    li { "Open the address above in Chrome; the certificate downloads." }
                    li { "Settings → Security → More security settings → Encryption and credentials → Install a certificate → CA certificate; choose the downloaded file." }
                    li { "Open this instance's address with " code { "https://" } " again: no warning, and the position button works." }
                }
                h2 { "iPad" }
                ol {
                    li { "Open the address above in Safari and allow the download of the configuration profile." }
                    li { "Settings → General → VPN & Device Management: install the downloaded profile." }
                    li { "Settings → General → About → Certificate Trust Settings: switch on full trust for the Tideline CA." }
                }
            }
        },
    );
    super::page::page(markup)
}
