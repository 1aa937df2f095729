//! The HTTP server: `/metrics`, `/-/healthy`, `/-/ready`, the HTML overview at `/`, and the JSON
//! API (src/api.rs). Only API requests that ask for live data or start an audit call AWS;
//! `/metrics` and the overview read the current snapshot.
//!
//! Around every request: the web configuration's basic auth and headers (src/web/); around every
//! connection: its TLS, a cap on open connections, and timeouts so that a slow or silent client
//! cannot hold a connection (or a slot) for long.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
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
/// A connection's first request head must have arrived within this of its accept, whatever
/// comes first (TLS handshake, HTTP/2 detection, a slow head): else it is dropped. On HTTP/1,
/// hyper also times each later head with it, from when it starts waiting for one, which
/// closes idle keep-alive connections.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At the connection cap, a connection this young is not closed for a new one: time enough to
/// send a request over a slow link. Closing younger ones would let strangers who reconnect at
/// once churn every slot faster than a scraper's request can arrive.
const SHED_MIN_AGE: Duration = Duration::from_secs(1);
/// File descriptors kept for all but served connections: the listener, AWS connections, files.
const RESERVED_FDS: u64 = 1024;
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
/// `server.max_connections` connections are open at once (fewer when the file descriptor limit
/// says so: [`connection_cap`]). At the cap, a new connection closes the one that has waited
/// longest for a request head; when every connection has a request in flight, it waits for one
/// to finish. So strangers who connect and say nothing, or say it slowly, never keep a
/// scraper out: it sends its request at once, so it is never the one closed.
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<AppState>,
    web: Option<Arc<web::Live>>,
    shutdown: CancellationToken,
) {
    let max = connection_cap(state.config.server.max_connections.max(1));
    let slots = Arc::new(Semaphore::new(max));
    let open = Arc::new(Open::new(SHED_MIN_AGE));
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
        let Some(slot) = open.slot(&slots, &shutdown).await else {
            break;
        };
        let activity = open.add();
        let server = server.clone();
        let open = open.clone();
        tokio::spawn(async move {
            server.connection(stream, &activity).await;
            open.remove(&activity);
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

/// Soft RLIMIT_NOFILE raised to the hard limit (as Go's runtime does at start: idle sockets
/// cost tokio little, file descriptors are what runs out), and `configured` kept below it with
/// [`RESERVED_FDS`] to spare.
fn connection_cap(configured: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the file descriptor limit");
            return configured;
        }
    };
    let usable = limit.saturating_sub(RESERVED_FDS.min(limit / 2)).max(1);
    match usize::try_from(usable) {
        Ok(usable) if usable < configured => {
            tracing::warn!(
                max_connections = configured,
                file_descriptor_limit = limit,
                using = usable,
                "server.max_connections is above what the file descriptor limit (ulimit -n, \
                 LimitNOFILE) leaves for connections; using less"
            );
            usable
        }
        _ => configured,
    }
}

/// The open connections, to pick one to close at the cap.
struct Open {
    by_id: Mutex<(u64, HashMap<u64, Arc<Activity>>)>,
    /// Told when a connection's last request in flight ends, or it first reads all it was sent.
    went_idle: Arc<Notify>,
    /// No connection is closed for another before this age ([`SHED_MIN_AGE`]).
    min_age: Duration,
}

impl Open {
    fn new(min_age: Duration) -> Self {
        Self {
            by_id: Mutex::default(),
            went_idle: Arc::default(),
            min_age,
        }
    }

    fn add(&self) -> Arc<Activity> {
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let id = by_id.0;
        by_id.0 = id.wrapping_add(1);
        let activity = Arc::new(Activity::new(id, self.went_idle.clone()));
        by_id.1.insert(id, activity.clone());
        activity
    }

    fn remove(&self, activity: &Activity) {
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        by_id.1.remove(&activity.id);
    }

    /// Closes the connection that has waited longest for a request head. Else the error says
    /// when one that waits will be old enough ([`SHED_MIN_AGE`]), or None when every
    /// connection has a request in flight or has not read all it was sent yet (a scraper's
    /// connection, accepted but not yet read, holds a whole request).
    fn shed_oldest_waiting(&self) -> Result<(), Option<Instant>> {
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let mut oldest: Option<(Instant, u64)> = None;
        let mut next_eligible: Option<Instant> = None;
        for (id, activity) in &by_id.1 {
            let Some(since) = activity.waiting_since() else {
                continue;
            };
            let eligible = activity.started + self.min_age;
            if eligible > Instant::now() {
                next_eligible = Some(next_eligible.map_or(eligible, |n| n.min(eligible)));
            } else if oldest.is_none_or(|(o, _)| since < o) {
                oldest = Some((since, *id));
            }
        }
        let Some(activity) = oldest.and_then(|(_, id)| by_id.1.remove(&id)) else {
            return Err(next_eligible);
        };
        tracing::debug!("connection cap reached: closing the connection waiting the longest");
        activity.shed.cancel();
        Ok(())
    }

    /// A slot for a new connection, made at the cap by closing a waiting one; None on shutdown.
    async fn slot(
        &self,
        slots: &Arc<Semaphore>,
        shutdown: &CancellationToken,
    ) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(slot) = slots.clone().try_acquire_owned() {
                return Some(slot);
            }
            // Enabled before looking, so that a connection going idle meanwhile is not missed.
            let went_idle = self.went_idle.notified();
            tokio::pin!(went_idle);
            went_idle.as_mut().enable();
            let shed = self.shed_oldest_waiting();
            // Nothing to close yet: look again when a connection may be closed.
            let look_again = match shed {
                Err(Some(at)) => Some(tokio::time::Instant::from_std(at)),
                _ => None,
            };
            tokio::select! {
                slot = slots.clone().acquire_owned() => return slot.ok(),
                () = went_idle, if shed.is_err() => {}
                () = sleep_until(look_again), if look_again.is_some() => {}
                () = shutdown.cancelled() => return None,
            }
        }
    }
}

impl Server {
    async fn connection(self: &Arc<Self>, stream: TcpStream, activity: &Arc<Activity>) {
        let head_by = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
        let stream = Watched {
            io: stream,
            activity: activity.clone(),
        };
        let serve = async {
            // TLS settings as of this connection's start: a reload applies to new connections.
            let web = self.web.as_ref().map(|w| w.current());
            let http2 = web.as_ref().is_none_or(|w| w.http2);
            match web.and_then(|w| w.tls.clone()) {
                None => self.serve_io(stream, http2, activity.clone()).await,
                Some(tls) => match tokio_rustls::TlsAcceptor::from(tls).accept(stream).await {
                    Ok(stream) => self.serve_io(stream, http2, activity.clone()).await,
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                },
            }
        };
        // Dropping `serve` closes the connection at once: it has no request to finish.
        tokio::select! {
            () = serve => {}
            () = activity.shed.cancelled() => {}
            () = activity.no_request_by(head_by) => {
                tracing::debug!("no request within {HEADER_READ_TIMEOUT:?} of the connection's start");
            }
        }
    }

    async fn serve_io<I>(self: &Arc<Self>, io: I, http2: bool, activity: Arc<Activity>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
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

/// Requests in flight on one connection, and since when it has had none (from its accept
/// until its first request).
struct Activity {
    id: u64,
    started: Instant,
    state: Mutex<ActivityState>,
    /// Cancelled to close the connection at once, for a new one at the cap.
    shed: CancellationToken,
    went_idle: Arc<Notify>,
}

struct ActivityState {
    in_flight: usize,
    since: Instant,
    requests: u64,
    /// A read has found nothing more to read: the client has had its chance to send a request.
    caught_up: bool,
    /// When a write last made progress: a response still going out is not waiting.
    wrote: Instant,
}

struct Busy(Arc<Activity>);

impl Activity {
    fn new(id: u64, went_idle: Arc<Notify>) -> Self {
        Self {
            id,
            started: Instant::now(),
            state: Mutex::new(ActivityState {
                in_flight: 0,
                since: Instant::now(),
                requests: 0,
                caught_up: false,
                wrote: Instant::now(),
            }),
            shed: CancellationToken::new(),
            went_idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut state = self.lock();
        state.in_flight += 1;
        state.requests += 1;
        Busy(self.clone())
    }

    /// Since when the connection has waited for a request head (its start, the end of its last
    /// request, or its last write, whichever is last); None with a request in flight or before
    /// it has read all that the client sent.
    fn waiting_since(&self) -> Option<Instant> {
        let state = self.lock();
        (state.in_flight == 0 && state.caught_up).then_some(state.since.max(state.wrote))
    }

    fn wrote(&self) {
        self.lock().wrote = Instant::now();
    }

    fn caught_up(&self) {
        let first = !std::mem::replace(&mut self.lock().caught_up, true);
        if first {
            self.went_idle.notify_waiters();
        }
    }

    /// Resolves at `deadline` if no request has begun by then; never otherwise.
    async fn no_request_by(&self, deadline: tokio::time::Instant) {
        tokio::time::sleep_until(deadline).await;
        if self.lock().requests > 0 {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let (in_flight, since) = {
                let state = self.lock();
                (state.in_flight, state.since)
            };
            let wait = match (in_flight, since) {
                (1.., _) => limit,
                (0, since) => match limit.checked_sub(since.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                },
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let idle = {
            let mut state = self.0.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.since = Instant::now();
            state.in_flight == 0
        };
        if idle {
            self.0.went_idle.notify_waiters();
        }
    }
}

/// A connection's socket, telling its [`Activity`] when a read first finds nothing to read and
/// when a write makes progress.
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if read.is_pending() {
            self.activity.caught_up();
        }
        read
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(1..)) = written {
            self.activity.wrote();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(1..)) = written {
            self.activity.wrote();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

pub type Resp = Response<Full<Bytes>>;

async fn handle(state: Arc<AppState>, req: &mut Request<Incoming>) -> Resp {
    if let Some(api) = &state.api
        && crate::api::owns(req.uri().path())
    {
        return api.handle(&state.store, req).await;
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
        _ => html(crate::overview::render(
            &state.store.load(),
            &state.config.checks,
            state.api.is_some(),
        )),
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
        Ok(state.exporter.render_body(format, gzip).into_bytes())
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
    use std::time::Duration;

    use super::{Open, accepts_gzip};

    #[test]
    fn at_the_cap_the_connection_waiting_longest_is_closed() {
        let open = Open::new(Duration::ZERO);
        let [first, second, third, fourth] = [(); 4].map(|()| open.add());
        // The first has a request in flight; the fourth has not read what it was sent yet.
        for a in [&first, &second, &third] {
            a.caught_up();
        }
        let busy = first.begin();
        assert_eq!(open.shed_oldest_waiting(), Ok(()));
        assert!(second.shed.is_cancelled(), "not the one waiting longest");
        assert!(!first.shed.is_cancelled() && !third.shed.is_cancelled());
        assert_eq!(open.shed_oldest_waiting(), Ok(()));
        assert!(third.shed.is_cancelled());
        // Left: one busy, one not read yet.
        assert_eq!(open.shed_oldest_waiting(), Err(None));
        assert!(!fourth.shed.is_cancelled());
        // Once the request ends, its connection waits for the next one.
        drop(busy);
        assert_eq!(open.shed_oldest_waiting(), Ok(()));
        assert!(first.shed.is_cancelled());
    }

    #[test]
    fn a_young_connection_is_not_closed_for_another() {
        let open = Open::new(Duration::from_secs(60));
        let young = open.add();
        young.caught_up();
        match open.shed_oldest_waiting() {
            Err(Some(at)) => assert_eq!(at, young.started + Duration::from_secs(60)),
            other => panic!("{other:?}"),
        }
        assert!(!young.shed.is_cancelled());
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
