//! The HTTP server: `/metrics`, `/-/healthy`, `/-/ready`, the HTML overview at `/`, and the JSON
//! API (src/api.rs). Only API requests that ask for live data or start an audit call AWS;
//! `/metrics` and the overview read the current snapshot.
//!
//! Around every request: the web configuration's basic auth and headers (src/web/); around every
//! connection: its TLS, a cap on open connections, and timeouts so that a slow or silent client
//! cannot hold a connection (or a slot) for long.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::{Exporter, Format};
use crate::snapshot::SnapshotStore;
use crate::web;

pub struct AppState {
    pub exporter: Exporter,
    pub store: Arc<SnapshotStore>,
    pub config: Arc<Config>,
    /// None when `[api] enabled` is false.
    pub api: Option<Arc<crate::api::Api>>,
}

/// How long open connections get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);
/// A client must send a request's headers within this; it also bounds an idle HTTP/1
/// keep-alive connection, whose wait for the next request counts as reading headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS client must finish its handshake within this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in flight for this long is closed: idle HTTP/2 connections,
/// and responses that a client does not read.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// After the idle close began, how long the connection gets to finish before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// One request's handling, its body included; above the API's own 120 s limit of live calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(150);
/// How long a client gets to finish sending a body that its request's handler did not read.
const BODY_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head (request line and headers); larger ones get 431.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Serves plain HTTP, without a web configuration file.
pub async fn serve(listener: TcpListener, state: Arc<AppState>, shutdown: CancellationToken) {
    serve_with(listener, state, None, shutdown).await;
}

/// What every connection shares.
struct Server {
    state: Arc<AppState>,
    web: Option<Arc<web::Live>>,
    /// HTTP/1 and HTTP/2, or HTTP/1 only (`http_server_config.http2: false`).
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    shutdown: CancellationToken,
}

/// Serves until `shutdown`, then gives open connections [`DRAIN`] to finish. At most
/// `server.max_connections` connections are served at once: the others wait in the listen
/// queue (they are not accepted) until one closes.
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<AppState>,
    web: Option<Arc<web::Live>>,
    shutdown: CancellationToken,
) {
    let max = state.config.server.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let mut auto = auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // hyper's minimum buffer is 8 KiB; a head that does not fit gets 431.
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    auto.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let http1 = auto.clone().http1_only();
    let server = Arc::new(Server {
        state,
        web,
        auto,
        http1,
        shutdown: shutdown.clone(),
    });
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let server = server.clone();
        tokio::spawn(async move {
            server.connection(stream).await;
            drop(slot);
        });
    }
    drop(listener);
    // Every slot back: every connection closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}

impl Server {
    async fn connection(self: &Arc<Self>, stream: TcpStream) {
        // TLS settings as of this connection's start: a reload applies to new connections.
        let web = self.web.as_ref().map(|w| w.current());
        let http2 = web.as_ref().is_none_or(|w| w.http2);
        match web.and_then(|w| w.tls.clone()) {
            None => self.serve_io(stream, http2).await,
            Some(tls) => {
                let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await {
                    Ok(Ok(stream)) => self.serve_io(stream, http2).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_io<I>(self: &Arc<Self>, io: I, http2: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let service = {
            let (server, activity) = (self.clone(), activity.clone());
            service_fn(move |req| {
                let busy = activity.begin();
                let server = server.clone();
                async move {
                    let response = server.request(req).await;
                    drop(busy);
                    response
                }
            })
        };
        let builder = if http2 { &self.auto } else { &self.http1 };
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        // Set once the connection was asked to close; it is dropped at this instant.
        let mut hard_stop: Option<tokio::time::Instant> = None;
        loop {
            let stop_at = hard_stop;
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = self.shutdown.cancelled(), if stop_at.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    hard_stop = Some(tokio::time::Instant::now() + DRAIN);
                }
                () = activity.idle(IDLE_TIMEOUT), if stop_at.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    hard_stop = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                () = sleep_until(stop_at), if stop_at.is_some() => return,
            }
        }
    }

    /// Basic auth and extra headers of the web configuration, around [`handle`].
    async fn request(self: Arc<Self>, mut req: Request<Incoming>) -> Result<Resp, Infallible> {
        let web = self.web.as_ref().map(|w| w.current());
        // The bound covers a wait for a bcrypt slot too.
        let mut response = match tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.answer(web.as_deref(), &mut req),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The request took too long\n",
            ),
        };
        let limit = self.state.config.api.max_body_bytes;
        if !drain(&mut req, limit).await && req.version() < Version::HTTP_2 {
            // The rest of the body is still on the wire: the connection cannot carry another
            // request. (HTTP/2 has no such header: its stream ends with the response.)
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(w) = &web {
            for (name, value) in &w.headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
        Ok(response)
    }

    async fn answer(&self, web: Option<&web::WebConfig>, req: &mut Request<Incoming>) -> Resp {
        let state = self.state.clone();
        // The API's paths carry their own bearer tokens in the one Authorization header, so
        // basic auth guards every other path.
        let api_path = state.api.is_some() && crate::api::owns(req.uri().path());
        // RFC 9112, section 3.2: exactly one Host in an HTTP/1.1 request, else 400.
        if req.version() == Version::HTTP_11
            && req.headers().get_all(header::HOST).iter().count() != 1
        {
            let message = "an HTTP/1.1 request needs exactly one Host header";
            return if api_path {
                crate::api::error(StatusCode::BAD_REQUEST, message)
            } else {
                text(
                    StatusCode::BAD_REQUEST,
                    "Bad request: exactly one Host header\n",
                )
            };
        }
        if let Some(auth) = web.and_then(|w| w.auth.clone()).filter(|_| !api_path)
            && !auth.allows(req.headers().get(header::AUTHORIZATION)).await
        {
            let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            return r;
        }
        handle(state, req).await
    }
}

/// Reads and drops what the handler left of a request's body, up to `limit` bytes and
/// [`BODY_DRAIN_TIMEOUT`]; true when the body was read to its end. An answer sent while the
/// client is still sending ends in a reset of the HTTP/2 stream (which clients such as curl
/// report as a failed request, not as our 401 or 405) or leaves the HTTP/1 connection unusable.
/// Not when the client waits for `100 Continue` (reading would send it) or announced more.
async fn drain(req: &mut Request<Incoming>, limit: usize) -> bool {
    let body = req.body();
    if body.is_end_stream() {
        return true;
    }
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    if expects_continue || body.size_hint().lower() > limit {
        return false;
    }
    let read = async {
        let mut seen: u64 = 0;
        while let Some(frame) = req.body_mut().frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                seen = seen.saturating_add(data.len() as u64);
                if seen > limit {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(BODY_DRAIN_TIMEOUT, read)
        .await
        .unwrap_or(false)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    state: Mutex<(usize, Instant)>,
}

struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new((0, Instant::now())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Instant)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.lock().0 += 1;
        Busy(self.clone())
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let (in_flight, since) = *self.lock();
            let wait = if in_flight > 0 {
                limit
            } else {
                match limit.checked_sub(since.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.0 = state.0.saturating_sub(1);
        state.1 = Instant::now();
    }
}

pub type Resp = Response<Full<Bytes>>;

async fn handle(state: Arc<AppState>, req: &mut Request<Incoming>) -> Resp {
    if let Some(api) = &state.api
        && crate::api::owns(req.uri().path())
    {
        return api.handle(&state, req).await;
    }
    let path = req.uri().path();
    let known = matches!(
        path,
        "/" | "/metrics" | "/-/healthy" | "/health" | "/-/ready"
    );
    if !known {
        return text(StatusCode::NOT_FOUND, "Not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => metrics(state, req).await,
        "/-/healthy" | "/health" => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" if state.store.ready() => text(StatusCode::OK, "Ready\n"),
        "/-/ready" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the first collection of every account has not finished\n",
        ),
        _ => html(crate::overview::render(&state)),
    }
}

async fn metrics(state: Arc<AppState>, req: &Request<Incoming>) -> Resp {
    let header_str = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let format = Format::negotiate(header_str(header::ACCEPT));
    let gzip = accepts_gzip(header_str(header::ACCEPT_ENCODING));
    // Encoding a large snapshot is CPU work; keep it off the threads that serve connections,
    // and wait for a turn so that 64 concurrent scrapes do not hold 64 copies of it.
    let turn = state.exporter.render_turn().await;
    let rendered = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let _turn = turn;
        let body = state.exporter.render(format);
        if !gzip {
            return Ok(body.into_bytes());
        }
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 8),
            flate2::Compression::fast(),
        );
        enc.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
        enc.finish().map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("the encoding task failed: {e}")));
    match rendered {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            h.insert(
                header::VARY,
                HeaderValue::from_static("Accept, Accept-Encoding"),
            );
            if gzip {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "encoding /metrics failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n")
        }
    }
}

fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            name.eq_ignore_ascii_case("gzip") && q > 0.0
        })
    })
}

fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn html(page: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(page)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
