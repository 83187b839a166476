//! The frame around every page: navigation for the user's role, who is
//! signed in, and the sync indicator (last successful sync, local changes
//! waiting, "Sync now", and whether the upstream can be reached).

use super::page::PageError;
use crate::access::{Access, Action};
use crate::links::see_other;
use crate::state::AppState;
use crate::upstream::{self, SyncFailure};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup, DOCTYPE};

/// What the frame shows, read once per page.
pub struct Chrome {
    pub username: String,
    pub role: String,
    pub station: String,
    pub can: Can,
    /// Forms records can be made with: id and title.
    pub forms: Vec<(String, String)>,
    sync: Option<SyncState>,
}

/// What the user's role allows, for drawing only the actions they may take
/// (the handlers check again).
#[derive(Debug, Clone, Copy)]
pub struct Can {
    pub read: bool,
    pub write: bool,
    pub review: bool,
    pub export: bool,
    pub sync: bool,
    pub admin: bool,
}

struct SyncState {
    upstream: String,
    running: bool,
    last_success: Option<String>,
    /// The last attempt failed after (or without) the last success.
    failing: Option<String>,
    /// `SyncFailure::kind` of the failure (its headline and advice follow from it).
    kind: Option<String>,
    /// Records sent and received by the last successful sync.
    moved: Option<(u64, u64)>,
    pending: Option<u64>,
}

impl SyncState {
    /// The bar's state: `running`, `online`, `never`, `offline` (the upstream
    /// cannot be reached) or `refused` (it answered no, or not as Tideline).
    fn state(&self) -> &'static str {
        match (&self.failing, self.kind.as_deref()) {
            _ if self.running => "running",
            (Some(_), Some("unreachable") | None) => "offline",
            (Some(_), Some(_)) => "refused",
            (None, _) if self.last_success.is_some() => "online",
            (None, _) => "never",
        }
    }
}

impl Chrome {
    pub fn new(state: &AppState, access: &Access) -> Chrome {
        let can = |a| access.require(a).is_ok();
        let sync = state.agent.as_ref().map(|agent| {
            let status =
                upstream::status_json(&state.records, Some(&agent.upstream), agent.is_running());
            let text = |k: &str| status[k].as_str().map(str::to_string);
            // The last error is cleared by the next success, so it says
            // whether the last attempt failed (attempt times have seconds
            // only: two syncs in one second look alike).
            let failing = text("last_error");
            let moved = status["last_outcome"].as_object().map(|o| {
                (
                    o["pushed"].as_u64().unwrap_or(0),
                    o["pulled"].as_u64().unwrap_or(0),
                )
            });
            SyncState {
                upstream: agent.upstream.clone(),
                running: agent.is_running(),
                last_success: text("last_success"),
                // Cleared together with the error by the next success.
                kind: text("last_error_kind"),
                failing,
                moved,
                pending: status["pending_local_changes"].as_u64(),
            }
        });
        Chrome {
            username: access.user.username.to_string(),
            role: access.user.role.to_string(),
            station: access.user.station.clone(),
            can: Can {
                read: can(Action::ReadRecords),
                write: can(Action::WriteRecords),
                review: can(Action::Review),
                export: can(Action::Export),
                sync: can(Action::Sync),
                admin: can(Action::ManageUsers),
            },
            forms: state
                .records
                .forms()
                .list_latest()
                .into_iter()
                .map(|f| (f.id.clone(), f.title.clone()))
                .collect(),
            sync,
        }
    }
}

/// `2026-11-28T11:57:03Z` → `2026-11-28 11:57 UTC`.
pub fn when(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

fn sync_indicator(chrome: &Chrome) -> Markup {
    html! {
        @match &chrome.sync {
            None => {
                div #sync.sync data-state="none" {
                    span #sync-state { "No upstream: records stay on this instance." }
                }
            }
            Some(s) => {
                @let state = s.state();
                @let headline = s.kind.as_deref().and_then(SyncFailure::headline);
                div #sync.sync data-state=(state) data-kind=[s.kind.as_deref()] aria-live="polite" {
                    span #sync-state {
                        @match state {
                            "running" => { "Syncing with the upstream…" }
                            "offline" => { "Offline: the upstream cannot be reached. Work goes on here and syncs when the link is back." }
                            "refused" => {
                                @match headline {
                                    Some(h) => { (h) }
                                    None => { "Sync failed: " (s.failing.as_deref().unwrap_or_default()) }
                                }
                                " " (s.kind.as_deref().map(SyncFailure::advice).unwrap_or_default())
                            }
                            "online" => { "Synced" }
                            _ => { "Not synced yet" }
                        }
                    }
                    " · "
                    span #sync-last {
                        "Last successful sync: "
                        @match &s.last_success { Some(t) => { (when(t)) } None => { "never" } }
                        @if let Some((sent, received)) = s.moved {
                            " (" (sent) " sent, " (received) " received)"
                        }
                    }
                    " · "
                    span #sync-pending {
                        @match s.pending { Some(n) => { (n) " local change(s) waiting" } None => { "local changes unknown" } }
                    }
                    @if let (Some(reason), Some(_)) = (&s.failing, headline) {
                        details #sync-error {
                            summary { "Details" }
                            (reason)
                        }
                    }
                    @if chrome.can.sync {
                        form.inline #sync-now-form method="post" action="/sync-now" {
                            button #sync-now type="submit" title=(format!("Sync with {}", s.upstream)) { "Sync now" }
                        }
                        span #sync-result role="status" {}
                    }
                }
            }
        }
    }
}

/// A whole page: head, navigation, sync indicator and `body`.
pub fn frame(title: &str, chrome: &Chrome, active: &str, body: Markup) -> Markup {
    let nav = |href: &str, label: &str, key: &str| {
        html! {
            li { a href=(href) aria-current=[(key == active).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (super::page::head(title, true))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Tideline" }
                    nav aria-label="Main" {
                        ul {
                            @if chrome.can.read {
                                (nav("/records", "Records", "records"))
                                (nav("/map", "Map", "map"))
                            }
                            @if chrome.can.write {
                                @for (id, title) in &chrome.forms {
                                    (nav(&format!("/records/new?form={id}"), &format!("New {}", title.to_lowercase()), &format!("new:{id}")))
                                }
                            }
                            @if chrome.can.admin {
                                (nav("/admin", "Administration", "admin"))
                            }
                        }
                    }
                    div.who {
                        span #who { (chrome.username) " · " (chrome.role) " · " (chrome.station) }
                        form.inline method="post" action="/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                (sync_indicator(chrome))
                main #main { (body) }
            }
        }
    }
}

/// `POST /sync-now`: start a sync in the background and go back; the
/// indicator shows it running and then its result.
pub async fn sync_now(
    state: web::Data<AppState>,
    access: Access,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    access.require(Action::Sync)?;
    if let Some(agent) = state.agent.clone() {
        // Wait a while, so the page that comes back shows how it went; a
        // long first sync goes on in the background and the bar follows it.
        let sync = tokio::spawn(async move { agent.sync_now().await });
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), sync).await;
    }
    Ok(see_other(&back(&req)))
}

/// Where the user came from, if it was a page of this instance.
pub fn back(req: &HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            let host = req.connection_info().host().to_string();
            r.split_once(&host).map(|(_, path)| path.to_string())
        })
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/records".to_string())
}
