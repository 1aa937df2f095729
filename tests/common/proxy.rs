//! A fault-injecting HTTP proxy between the exporter and the emulator, on 127.0.0.1.
//!
//! It tells AWS calls apart (IAM, STS and EC2 by the `Action` of their form body, S3 and S3 Control by method,
//! path and sub-resource, Organizations by its `X-Amz-Target` header; a request it cannot name
//! keeps its method and path as its action) and accounts (AssumeRole by its `RoleArn`, every
//! other call by the key that signed it), and answers the calls a [`Rule`] matches with a
//! throttle, an error, a hang or a closed connection instead of forwarding them, or with a
//! canned answer for what the emulator lacks (matched on the call's form parameters too). It can
//! also rewrite the credential report, shorten assumed-role sessions and refuse the calls signed
//! with expired ones, and go down and come back. Everything it answers is counted, for tests
//! to assert on.
//!
//! It runs on a runtime of its own, so blocking tests can use it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;
use tokio::task::{JoinHandle, JoinSet};

use super::BASE_ACCOUNT;

/// What the proxy answers instead of (or on top of) the emulator's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The service's throttling error, as AWS sends it: IAM and STS `Throttling` (400), EC2
    /// `RequestLimitExceeded` (503), S3 `SlowDown` (503).
    Throttle,
    /// An AWS error with this HTTP status and code, in the service's error format.
    Error(u16, &'static str),
    /// Read the request and never answer.
    Hang,
    /// Close the connection without answering.
    Close,
    /// GenerateCredentialReport answers `State` INPROGRESS (not forwarded).
    ReportInProgress,
    /// Forward GetCredentialReport, then cut the report in the middle of a row.
    TruncateReport,
    /// Forward GetCredentialReport, then replace the report with bytes that are not a CSV.
    MalformReport,
    /// Answer 200 with this XML body (not forwarded), counted with this outcome: AWS-format
    /// answers to calls the emulator does not implement.
    Reply { outcome: &'static str, body: String },
}

/// Which calls get a fault: an action (or all), an account (or all), a fraction of them.
#[derive(Debug, Clone)]
pub struct Rule {
    action: Option<String>,
    account: Option<String>,
    /// Form parameters the call must have, with these values (IAM, STS and EC2 calls).
    params: Vec<(String, String)>,
    rate: f64,
    /// How many more calls the rule may hit; None: no limit.
    remaining: Option<u32>,
    fault: Fault,
}

impl Rule {
    /// Every call.
    pub fn any(fault: Fault) -> Self {
        Self {
            action: None,
            account: None,
            params: Vec::new(),
            rate: 1.0,
            remaining: None,
            fault,
        }
    }

    /// Calls of this AWS action (`AssumeRole`, `GetCredentialReport`, `ListBuckets`...).
    pub fn action(action: &str, fault: Fault) -> Self {
        Self {
            action: Some(action.to_owned()),
            ..Self::any(fault)
        }
    }

    /// Only calls for this account.
    pub fn account(mut self, account: &str) -> Self {
        self.account = Some(account.to_owned());
        self
    }

    /// Only calls whose form parameter `name` is `value` (`Arn`, `JobId`, `Marker`...).
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Only this fraction of the matching calls, drawn from the proxy's seeded generator: the
    /// same draws on every run, though which call gets which draw depends on their order.
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// At most `n` calls, then the rule is spent.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, call: &Call) -> bool {
        self.remaining != Some(0)
            && self.action.as_ref().is_none_or(|a| *a == call.action)
            && self.account.as_ref().is_none_or(|a| *a == call.account)
            && self
                .params
                .iter()
                .all(|(k, v)| call.form.get(k).is_some_and(|f| f == v))
    }
}

/// One call as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Call {
    /// `iam`, `sts`, `ec2`, `s3` or `s3control`.
    service: String,
    action: String,
    account: String,
    key_id: String,
    /// The form parameters of the body, as query-protocol calls (IAM, STS, EC2) send them.
    form: BTreeMap<String, String>,
}

struct State {
    rules: Vec<Rule>,
    rng: fastrand::Rng,
    /// Signing key id -> account: the base credentials, then what AssumeRole answers taught.
    accounts: HashMap<String, String>,
    /// Assumed-role sessions are rewritten to last this long, and refused after it.
    session_lifetime: Option<Duration>,
    /// Key id -> when its (shortened) session expires.
    expiry: HashMap<String, SystemTime>,
    /// (service, action, account, outcome) -> calls.
    counts: HashMap<[String; 4], u64>,
    /// Assumed-role key ids that AWS no longer honours, with the error code they get.
    revoked: HashMap<String, &'static str>,
    /// Where calls are forwarded: the emulator, or a new one after a restart.
    upstream: String,
}

pub struct Proxy {
    /// `http://127.0.0.1:PORT`, for `[aws] endpoint_url`.
    pub url: String,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    server: Mutex<Option<JoinHandle<()>>>,
    runtime: Option<Runtime>,
}

impl Proxy {
    /// A proxy to `upstream` (the emulator's endpoint), its generator seeded with `seed`.
    pub fn start(upstream: &str, seed: u64) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let state = State {
            rules: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
            // moto puts calls signed with unknown keys, such as the tests' "testing", in its
            // default account.
            accounts: HashMap::from([("testing".to_owned(), BASE_ACCOUNT.to_owned())]),
            session_lifetime: None,
            expiry: HashMap::new(),
            counts: HashMap::new(),
            revoked: HashMap::new(),
            upstream: upstream.trim_end_matches('/').to_owned(),
        };
        let proxy = Self {
            url: format!("http://{addr}"),
            addr,
            state: Arc::new(Mutex::new(state)),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            server: Mutex::new(None),
            runtime: Some(runtime),
        };
        proxy.set_down(false);
        proxy
    }

    /// Adds a rule; the first rule that matches a call (and wins its draw) applies.
    pub fn inject(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Removes every rule: calls are forwarded as they are again.
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Rewrites AssumeRole answers so that sessions expire `lifetime` from now, and answers
    /// `ExpiredToken` to calls signed with a session past its expiry.
    pub fn set_session_lifetime(&self, lifetime: Duration) {
        self.state.lock().unwrap().session_lifetime = Some(lifetime);
    }

    /// Every assumed-role session known so far is refused from now on with `code` (403), as
    /// after AWS's "revoke active sessions" or an emulator that restarted and forgot them.
    pub fn revoke_sessions(&self, code: &'static str) {
        let mut state = self.state.lock().unwrap();
        let keys: Vec<String> = state
            .accounts
            .keys()
            .filter(|k| *k != "testing")
            .cloned()
            .collect();
        for k in keys {
            state.revoked.insert(k, code);
        }
    }

    /// Forwards to `upstream` from now on: with a new emulator, an AWS that forgot every
    /// session (the sessions it issued are not revoked here: the new emulator decides).
    pub fn set_upstream(&self, upstream: &str) {
        self.state.lock().unwrap().upstream = upstream.trim_end_matches('/').to_owned();
    }

    /// Down: the port refuses connections and open ones are closed. Up: it listens again, on
    /// the same port.
    pub fn set_down(&self, down: bool) {
        let runtime = self.runtime.as_ref().unwrap();
        let mut server = self.server.lock().unwrap();
        if let Some(task) = server.take() {
            task.abort();
            // Wait until the listener and the open connections are gone.
            let _ = runtime.block_on(task);
        }
        if down {
            return;
        }
        // std's bind sets SO_REUSEADDR, so the port can be taken again at once.
        let listener = std::net::TcpListener::bind(self.addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let _guard = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let handler = Handler {
            state: self.state.clone(),
            client: self.client.clone(),
        };
        *server = Some(runtime.spawn(async move {
            // Owned here: aborting the server drops every connection with it.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { handler.handle(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        }));
    }

    /// Calls whose labels include all of `want`: `service`, `action`, `account` and `outcome`
    /// (`forwarded`, the error code sent, `hang`, `close`, `INPROGRESS`, `truncated`,
    /// `malformed`, or a [`Fault::Reply`]'s own).
    pub fn count(&self, want: &[(&str, &str)]) -> u64 {
        const LABELS: [&str; 4] = ["service", "action", "account", "outcome"];
        for (k, _) in want {
            assert!(LABELS.contains(k), "no label {k}");
        }
        let state = self.state.lock().unwrap();
        state
            .counts
            .iter()
            .filter(|(key, _)| {
                want.iter().all(|(k, v)| {
                    let i = LABELS.iter().position(|l| l == k).unwrap();
                    key[i] == *v
                })
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Every count, for failure messages.
    pub fn counts(&self) -> Vec<([String; 4], u64)> {
        let mut all: Vec<_> = self
            .state
            .lock()
            .unwrap()
            .counts
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        all.sort();
        all
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What an answer is made of; converted to a hyper response at the end.
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Bytes,
}

#[derive(Clone)]
struct Handler {
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
}

impl Handler {
    async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let (call, fault) = self.decide(&parts, &body);
        let answer = match &fault {
            Some(Fault::Throttle) => {
                let (status, code) = match call.service.as_str() {
                    "ec2" => (503, "RequestLimitExceeded"),
                    "s3" | "s3control" => (503, "SlowDown"),
                    _ => (400, "Throttling"),
                };
                self.count(&call, code);
                error(&call.service, status, code)
            }
            Some(Fault::Error(status, code)) => {
                self.count(&call, code);
                error(&call.service, *status, code)
            }
            Some(Fault::Reply { outcome, body }) => {
                self.count(&call, outcome);
                xml_answer(200, body.clone())
            }
            Some(Fault::Hang) => {
                self.count(&call, "hang");
                std::future::pending::<Answer>().await
            }
            Some(Fault::Close) => {
                self.count(&call, "close");
                return Err(std::io::Error::other("closed by the fault proxy"));
            }
            Some(Fault::ReportInProgress) => {
                self.count(&call, "INPROGRESS");
                xml_answer(
                    200,
                    "<GenerateCredentialReportResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
                     <GenerateCredentialReportResult><State>INPROGRESS</State>\
                     <Description>Report generation in progress</Description>\
                     </GenerateCredentialReportResult><ResponseMetadata><RequestId>fault-proxy</RequestId>\
                     </ResponseMetadata></GenerateCredentialReportResponse>"
                        .to_owned(),
                )
            }
            Some(Fault::TruncateReport | Fault::MalformReport) | None => {
                let mut answer = self.forward(&parts, body).await?;
                let outcome = match &fault {
                    Some(Fault::TruncateReport) => {
                        rewrite_report(&mut answer, truncate);
                        "truncated"
                    }
                    Some(Fault::MalformReport) => {
                        rewrite_report(&mut answer, |_| b"\xff\xfe not a report \x00\n".to_vec());
                        "malformed"
                    }
                    _ => "forwarded",
                };
                if call.action == "AssumeRole" && answer.status == 200 {
                    self.learn_session(&call, &mut answer);
                }
                self.count(&call, outcome);
                answer
            }
        };
        let mut resp = Response::builder().status(answer.status);
        for (k, v) in &answer.headers {
            resp = resp.header(k.as_str(), v.as_slice());
        }
        Ok(resp.body(Full::new(answer.body)).unwrap())
    }

    /// The call, and the fault to answer it with (None: forward it as it is). A call signed
    /// with an expired session gets `ExpiredToken` whatever the rules say.
    fn decide(&self, parts: &hyper::http::request::Parts, body: &[u8]) -> (Call, Option<Fault>) {
        let mut state = self.state.lock().unwrap();
        let call = identify(parts, body, &state.accounts);
        if let Some(expiry) = state.expiry.get(&call.key_id)
            && SystemTime::now() >= *expiry
        {
            // AWS: 403 from the query-protocol services, 400 from S3 and EC2.
            let status = if matches!(call.service.as_str(), "iam" | "sts") {
                403
            } else {
                400
            };
            return (call, Some(Fault::Error(status, "ExpiredToken")));
        }
        if let Some(code) = state.revoked.get(&call.key_id) {
            return (call, Some(Fault::Error(403, code)));
        }
        let State { rules, rng, .. } = &mut *state;
        let rule = rules
            .iter_mut()
            .filter(|r| r.matches(&call))
            .find(|r| rng.f64() < r.rate);
        let fault = rule.map(|r| {
            if let Some(n) = &mut r.remaining {
                *n -= 1;
            }
            r.fault.clone()
        });
        (call, fault)
    }

    fn count(&self, call: &Call, outcome: &str) {
        let key = [
            call.service.clone(),
            call.action.clone(),
            call.account.clone(),
            outcome.to_owned(),
        ];
        *self.state.lock().unwrap().counts.entry(key).or_default() += 1;
    }

    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
    ) -> Result<Answer, std::io::Error> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let upstream = self.state.lock().unwrap().upstream.clone();
        let mut req = self
            .client
            .request(parts.method.clone(), format!("{upstream}{path}"))
            .body(body);
        for (k, v) in &parts.headers {
            if !HOP_BY_HOP.contains(&k.as_str()) {
                req = req.header(k, v);
            }
        }
        let resp = req.send().await.map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter(|(k, _)| !HOP_BY_HOP.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        let body = resp.bytes().await.map_err(std::io::Error::other)?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Remembers whose the new key is, and shortens its session when asked to.
    fn learn_session(&self, call: &Call, answer: &mut Answer) {
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        let Some(key_id) = between(&text, "<AccessKeyId>", "</AccessKeyId>") else {
            return;
        };
        let mut state = self.state.lock().unwrap();
        state
            .accounts
            .insert(key_id.to_owned(), call.account.clone());
        let Some(lifetime) = state.session_lifetime else {
            return;
        };
        // Whole seconds, as AWS writes it, so that the proxy and the client agree on the instant.
        let expiry = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                (SystemTime::now() + lifetime)
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            );
        state.expiry.insert(key_id.to_owned(), expiry);
        let Some(old) = between(&text, "<Expiration>", "</Expiration>") else {
            return;
        };
        let new = DateTime::<Utc>::from(expiry).to_rfc3339_opts(SecondsFormat::Secs, true);
        answer.body = Bytes::from(text.replacen(
            &format!("<Expiration>{old}</Expiration>"),
            &format!("<Expiration>{new}</Expiration>"),
            1,
        ));
    }
}

/// Headers that belong to one connection, or that the new body sets again.
const HOP_BY_HOP: [&str; 5] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

/// Service from the signature's credential scope, action and account as the module doc says.
fn identify(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    accounts: &HashMap<String, String>,
) -> Call {
    // `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/iam/aws4_request, SignedHeaders=...`
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scope: Vec<&str> = auth
        .split("Credential=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_default()
        .split('/')
        .collect();
    let key_id = scope.first().copied().unwrap_or_default().to_owned();
    let mut service = scope.get(3).copied().unwrap_or("unknown").to_owned();
    let path = parts.uri.path();
    let form = reqwest::Url::parse(&format!("http://form/?{}", String::from_utf8_lossy(body)))
        .map(|u| u.query_pairs().into_owned().collect::<BTreeMap<_, _>>())
        .unwrap_or_default();
    let action = if service == "s3" {
        if path.starts_with("/v20180820/") {
            service = "s3control".to_owned();
        }
        s3_action(parts.method.as_str(), path, parts.uri.query().unwrap_or(""))
    } else if let Some(target) = parts.headers.get("x-amz-target") {
        // The JSON protocol (Organizations): `X-Amz-Target: AWSOrganizationsV20161128.ListRoots`.
        target
            .to_str()
            .ok()
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_owned()
    } else {
        form.get("Action")
            .cloned()
            .unwrap_or_else(|| format!("unknown {} {}", parts.method, parts.uri))
    };
    let account = if action == "AssumeRole" {
        // arn:aws:iam::ACCOUNT:role/NAME
        form.get("RoleArn")
            .and_then(|arn| arn.split(':').nth(4))
            .unwrap_or("unknown")
            .to_owned()
    } else {
        accounts
            .get(&key_id)
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned())
    };
    Call {
        service,
        action,
        account,
        key_id,
        form,
    }
}

/// The S3 (or S3 Control) operation of a path-style request, told by its method, path and
/// sub-resource (the first query key) as the S3 API reference lists them; another request as
/// `METHOD path?query`, which names no operation.
fn s3_action(method: &str, path: &str, query: &str) -> String {
    // The SDK names an operation that nothing else tells apart: `?x-id=GetObject`.
    if let Some(id) = query.split('&').find_map(|p| p.strip_prefix("x-id=")) {
        return id.to_owned();
    }
    let sub = query.split('&').next().unwrap_or("").split('=').next();
    let segments = path.split('/').filter(|s| !s.is_empty()).count();
    let operation = if path.starts_with("/v20180820/") {
        (method == "GET"
            && path.trim_end_matches('/') == "/v20180820/configuration/publicAccessBlock")
            .then_some("GetPublicAccessBlock")
    } else if segments == 0 {
        (method == "GET").then_some("ListBuckets")
    } else if segments == 1 {
        match (method, sub) {
            ("GET", Some("location")) => Some("GetBucketLocation"),
            ("GET", Some("publicAccessBlock")) => Some("GetPublicAccessBlock"),
            ("GET", Some("policyStatus")) => Some("GetBucketPolicyStatus"),
            ("GET", Some("acl")) => Some("GetBucketAcl"),
            ("GET", Some("encryption")) => Some("GetBucketEncryption"),
            ("GET", Some("policy")) => Some("GetBucketPolicy"),
            ("GET", Some("versioning")) => Some("GetBucketVersioning"),
            ("GET", Some("tagging")) => Some("GetBucketTagging"),
            _ => None,
        }
    } else {
        None
    };
    match operation {
        Some(op) => op.to_owned(),
        None => format!("{method} {path}?{query}"),
    }
}

/// An AWS error answer in the service's format.
fn error(service: &str, status: u16, code: &str) -> Answer {
    let message = "injected by the fault proxy";
    if service == "organizations" {
        // The JSON protocol: the code in `__type` and in a header.
        return Answer {
            status,
            headers: vec![
                (
                    "content-type".to_owned(),
                    b"application/x-amz-json-1.1".to_vec(),
                ),
                ("x-amzn-errortype".to_owned(), code.as_bytes().to_vec()),
            ],
            body: Bytes::from(format!(
                "{{\"__type\":\"{code}\",\"Message\":\"{message}\"}}"
            )),
        };
    }
    let body = match service {
        "ec2" => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
        ),
        "s3" | "s3control" => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
        ),
        // The query protocol of IAM and STS.
        _ => {
            let kind = if status >= 500 { "Receiver" } else { "Sender" };
            format!(
                "<ErrorResponse xmlns=\"https://{service}.amazonaws.com/doc/2010-05-08/\"><Error>\
                 <Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>fault-proxy</RequestId></ErrorResponse>"
            )
        }
    };
    xml_answer(status, body)
}

fn xml_answer(status: u16, body: String) -> Answer {
    Answer {
        status,
        headers: vec![("content-type".to_owned(), b"text/xml".to_vec())],
        body: Bytes::from(body),
    }
}

/// Replaces the base64 `<Content>` of a GetCredentialReport answer with `f` of the report.
fn rewrite_report(answer: &mut Answer, f: impl FnOnce(&[u8]) -> Vec<u8>) {
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    let old = between(&text, "<Content>", "</Content>")
        .unwrap_or_else(|| panic!("no <Content> in the report answer: {text}"));
    let report = aws_smithy_types::base64::decode(old.trim()).unwrap();
    let new = aws_smithy_types::base64::encode(f(&report));
    answer.body = Bytes::from(text.replacen(old, &new, 1));
}

/// The report cut in the middle of its last row, so that the row has too few fields.
fn truncate(report: &[u8]) -> Vec<u8> {
    let text = report.strip_suffix(b"\n").unwrap_or(report);
    let last_row = text.iter().rposition(|b| *b == b'\n').unwrap() + 1;
    let first_comma = text[last_row..].iter().position(|b| *b == b',').unwrap();
    text[..last_row + first_comma + 1].to_vec()
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}
