//! The HTTP/WebSocket server: runs on a current-thread tokio runtime, on one thread of the
//! web Block's own process.

use crate::history::History;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// A command from a page, carried out by the Block in its next step.
pub(crate) const PAUSE: u8 = 1;
pub(crate) const RESUME: u8 = 2;

/// What the Block and the server share.
pub(crate) struct Shared {
    pub hub: Mutex<Hub>,
    pub tx: broadcast::Sender<Arc<Msg>>,
    pub stop: AtomicBool,
    pub stop_from: Mutex<String>,
    pub pause: AtomicU8,
    pub token: Option<String>,
    /// WebSocket clients connected now, and ever.
    pub clients: AtomicUsize,
    pub connects: AtomicU64,
    /// Clients that have sent the final message (the Block waits for them in `finish`).
    pub ended_sent: AtomicUsize,
    pub camera: Option<std::path::PathBuf>,
}

/// One push to every page; `end` is the last one (the test has ended).
pub(crate) struct Msg {
    pub end: bool,
    pub text: String,
}

/// What a page that connects gets first.
pub(crate) struct Hub {
    pub history: History,
    pub config: serde_json::Value,
    pub health: serde_json::Value,
    pub status: serde_json::Value,
    /// The last lines of the test's log (if the web view was given it).
    pub log: Vec<String>,
}

impl Hub {
    pub fn hello(&self) -> String {
        serde_json::json!({
            "type": "hello",
            "config": self.config,
            "labels": self.history.labels(),
            "rows": self.history.rows(),
            "stride": self.history.stride(),
            "health": self.health,
            "status": self.status,
            "log": self.log,
        })
        .to_string()
    }
}

const INDEX: &str = include_str!("../assets/index.html");
const APP: &str = include_str!("../assets/app.js");
const UPLOT_JS: &str = include_str!("../assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../assets/uPlot-LICENSE.txt");

pub(crate) async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut quit: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/", get(index))
        .route("/app.js", get(|| async { asset("text/javascript", APP) }))
        .route(
            "/uPlot.iife.min.js",
            get(|| async { asset("text/javascript", UPLOT_JS) }),
        )
        .route(
            "/uPlot.min.css",
            get(|| async { asset("text/css", UPLOT_CSS) }),
        )
        .route(
            "/uPlot-LICENSE.txt",
            get(|| async { asset("text/plain; charset=utf-8", UPLOT_LICENSE) }),
        )
        .route("/api/history", get(history))
        .route("/camera.bmp", get(camera))
        .route("/ws", get(ws))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = quit.wait_for(|q| *q).await;
        })
        .await
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// Whether the request carries the token (always true when none is set).
fn authorised(shared: &Shared, uri: &Uri) -> bool {
    let Some(token) = &shared.token else {
        return true;
    };
    uri.query()
        .unwrap_or("")
        .split('&')
        .any(|kv| kv.strip_prefix("token=") == Some(token.as_str()))
}

fn refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "this web view needs its access token: open the URL printed at the start of the test (…?token=…)\n",
    )
        .into_response()
}

async fn index(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    if !authorised(&shared, &uri) {
        return refused();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        INDEX,
    )
        .into_response()
}

async fn history(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    if !authorised(&shared, &uri) {
        return refused();
    }
    let body = shared.hub.lock().unwrap().hello();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The camera Block's latest preview (a PGM/PPM file written by its `PreviewFile`), as a BMP
/// the browser shows natively.
async fn camera(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    if !authorised(&shared, &uri) {
        return refused();
    }
    let Some(path) = &shared.camera else {
        return (StatusCode::NOT_FOUND, "no camera in this web view\n").into_response();
    };
    let file = std::fs::read(path).unwrap_or_default();
    match crate::image::pnm_to_bmp(&file) {
        Some(bmp) => {
            // The camera's frame index and time, for the page's "frame N, F fps".
            let (index, ts) = crate::image::frame_of(&file).unwrap_or((0, 0));
            (
                [
                    (header::CONTENT_TYPE, "image/bmp".to_owned()),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                    (
                        header::HeaderName::from_static("x-frame-index"),
                        index.to_string(),
                    ),
                    (
                        header::HeaderName::from_static("x-frame-timestamp-ns"),
                        ts.to_string(),
                    ),
                ],
                bmp,
            )
                .into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "no frame yet\n").into_response(),
    }
}

/// The Origin a browser sends must be this server (same host and port), so another site
/// open in the same browser cannot drive the test.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true; // not a browser (a test, a script): the token still applies
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    origin
        .strip_prefix("http://")
        .is_some_and(|o| !host.is_empty() && o == host)
}

async fn ws(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !authorised(&shared, &uri) {
        return refused();
    }
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin WebSocket refused\n").into_response();
    }
    upgrade.on_upgrade(move |socket| client(socket, shared))
}

async fn client(mut socket: WebSocket, shared: Arc<Shared>) {
    shared.clients.fetch_add(1, Ordering::SeqCst);
    shared.connects.fetch_add(1, Ordering::SeqCst);
    run_client(&mut socket, &shared).await;
    shared.clients.fetch_sub(1, Ordering::SeqCst);
}

async fn run_client(socket: &mut WebSocket, shared: &Shared) {
    // The history and the subscription under one lock: no row missed, none twice.
    let (hello, mut rx) = {
        let hub = shared.hub.lock().unwrap();
        (hub.hello(), shared.tx.subscribe())
    };
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(m) => {
                    if socket.send(Message::Text(m.text.as_str().into())).await.is_err() {
                        return;
                    }
                    if m.end {
                        shared.ended_sent.fetch_add(1, Ordering::SeqCst);
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                }
                // A slow browser missed pushes: it gets the whole history again instead of
                // the test waiting for it.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let hello = shared.hub.lock().unwrap().hello();
                    if socket.send(Message::Text(hello.into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            got = socket.recv() => match got {
                Some(Ok(Message::Text(t))) => command(shared, t.as_str()),
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

/// `{"cmd":"stop"|"pause"|"resume"}` from a page (already authorised at connection).
fn command(shared: &Shared, text: &str) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    match v.get("cmd").and_then(|c| c.as_str()) {
        Some("stop") => {
            *shared.stop_from.lock().unwrap() = v
                .get("who")
                .and_then(|w| w.as_str())
                .unwrap_or("a browser")
                .chars()
                .take(80)
                .collect();
            shared.stop.store(true, Ordering::SeqCst);
        }
        Some("pause") => shared.pause.store(PAUSE, Ordering::SeqCst),
        Some("resume") => shared.pause.store(RESUME, Ordering::SeqCst),
        _ => {}
    }
}
