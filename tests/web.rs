//! The web configuration (`--web.config.file`, the exporter-toolkit format) and the HTTP server's
//! limits, against the real binary: basic auth, TLS, client certificates, TLS versions, reloads
//! on change and on SIGHUP, bad files, slow clients, oversize headers and the connection cap.
//! Certificates are made at test time with rcgen; the client is rustls over a raw socket, so
//! every byte on the wire is the test's choice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{
    BASE_ACCOUNT, aws_test_env, exit_within, free_port, poll, scratch_dir, serving_address,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

// ---------------------------------------------------------------------------------------------
// Certificates

/// A CA, a server certificate for localhost and 127.0.0.1, a client certificate from the same
/// CA and one from another CA, written as PEM files into `dir`.
struct Pki {
    ca: CertificateDer<'static>,
    server: CertificateDer<'static>,
    client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    stranger: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (
    String,
    String,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone(), der)
}

impl Pki {
    fn write(dir: &Path) -> Self {
        let ca1 = ca("infraaudit test CA");
        let ca2 = ca("some other CA");
        let (server_pem, server_key, server, _) = leaf(
            &ca1,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (_, _, client, client_key) =
            leaf(&ca1, &["prometheus"], ExtendedKeyUsagePurpose::ClientAuth);
        let (_, _, stranger, stranger_key) =
            leaf(&ca2, &["prometheus"], ExtendedKeyUsagePurpose::ClientAuth);
        std::fs::write(dir.join("ca.pem"), ca1.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server_pem).unwrap();
        std::fs::write(dir.join("server.key"), server_key).unwrap();
        Self {
            ca: ca1.der().clone(),
            server,
            client: (vec![client], client_key),
            stranger: (vec![stranger], stranger_key),
        }
    }

    /// A client that trusts our CA, with `identity` as its certificate, speaking `versions`.
    fn client(
        &self,
        identity: Option<&(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
        Arc::new(match identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn hash(password: &str, cost: u32) -> String {
    bcrypt::hash(password, cost).unwrap()
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

// ---------------------------------------------------------------------------------------------
// HTTP over a raw socket

struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let cut: String = body.chars().take(200).collect();
        write!(f, "{}[{} body bytes] {cut:?}", self.head, self.body.len())
    }
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends one GET with `Connection: close` and reads the response by its Content-Length.
fn exchange(s: &mut impl ReadWrite, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "closed before a response head ({:?})",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {head:?}")))?;
    let mut r = Response {
        status,
        head,
        body: buf[end..].to_vec(),
    };
    let length: usize = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while r.body.len() < length {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        r.body.extend_from_slice(&chunk[..n]);
    }
    Ok(r)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    exchange(&mut connect(addr), path, headers)
}

/// One GET over TLS; also returns the certificates the server presented.
fn tls_get(
    addr: &str,
    client: Arc<ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<(Response, Vec<CertificateDer<'static>>)> {
    let conn = rustls::ClientConnection::new(client, ServerName::try_from("localhost").unwrap())
        .map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, connect(addr));
    let response = exchange(&mut tls, path, headers)?;
    let presented = tls
        .conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    Ok((response, presented))
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// `infraaudit --config config.toml --web.config.file web.yml` in a scratch directory. The one
/// account's AWS endpoint is a closed port: no data, but /metrics and /-/healthy answer.
struct Web {
    child: Child,
    addr: String,
    dir: PathBuf,
    log: PathBuf,
}

fn toml(listen: &str, extra: &str) -> String {
    let dead = free_port();
    format!(
        "[server]\nlisten_address = \"{listen}\"\n{extra}\n\
         [aws]\nendpoint_url = \"http://127.0.0.1:{dead}\"\nmax_attempts = 1\n\
         [[accounts]]\nid = \"{BASE_ACCOUNT}\"\ncollectors = [\"s3\"]\n"
    )
}

impl Web {
    /// `server_extra`: more `[server]` keys; `tail`: more TOML sections.
    fn start(tag: &str, web_yml: &str, server_extra: &str) -> Self {
        Self::start_in(scratch_dir(tag), web_yml, server_extra, "")
    }

    fn start_in(dir: PathBuf, web_yml: &str, server_extra: &str, tail: &str) -> Self {
        let config = toml("127.0.0.1:0", server_extra) + tail;
        std::fs::write(dir.join("config.toml"), config).unwrap();
        std::fs::write(dir.join("web.yml"), web_yml).unwrap();
        let log = dir.join("infraaudit.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
            .arg("--config")
            .arg(dir.join("config.toml"))
            .arg("--web.config.file")
            .arg(dir.join("web.yml"))
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut d = Self {
            child,
            addr: String::new(),
            dir,
            log,
        };
        // The listener is bound before this line is logged: connections queue from then on.
        d.addr = serving_address(&mut d.child, &d.log);
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Replaces web.yml at once (a rename), so no read sees half a file.
    fn rewrite(&self, web_yml: &str) {
        let tmp = self.dir.join("web.yml.tmp");
        std::fs::write(&tmp, web_yml).unwrap();
        std::fs::rename(&tmp, self.dir.join("web.yml")).unwrap();
    }

    fn hup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP failed");
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- infraaudit log ---\n{}", self.log_text());
        }
    }
}

fn status(r: io::Result<Response>) -> u16 {
    match r {
        Ok(r) => r.status,
        Err(e) => panic!("no HTTP response: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Basic auth and TLS

#[test]
fn basic_auth_over_plain_http() {
    // Cost 10, as htpasswd -B makes by default: the cached path has to make up for it.
    let yml = format!(
        "basic_auth_users:\n  alice: {}\n  bob: {}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n",
        hash("wonderland", 10),
        hash("builder", 4)
    );
    let d = Web::start("web-basic", &yml, "");
    let a = d.addr.as_str();

    let r = get(a, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Basic"));
    assert_eq!(
        r.header("x-frame-options"),
        Some("deny"),
        "headers on a 401 too"
    );
    let wrong = basic("alice", "looking-glass");
    assert_eq!(
        status(get(a, "/metrics", &[("Authorization", &wrong)])),
        401
    );
    let nobody = basic("mallory", "wonderland");
    assert_eq!(
        status(get(a, "/metrics", &[("Authorization", &nobody)])),
        401
    );
    let bearer = "Bearer wonderland";
    assert_eq!(
        status(get(a, "/-/healthy", &[("Authorization", bearer)])),
        401
    );

    let right = basic("alice", "wonderland");
    let started = Instant::now();
    let r = get(a, "/metrics", &[("Authorization", &right)]).unwrap();
    let uncached = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains("infraaudit_build_info"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            status(get(a, "/-/healthy", &[("Authorization", &right)])),
            200
        );
    }
    let cached = started.elapsed() / 5;
    eprintln!("bcrypt cost 10: first request {uncached:?}, cached requests {cached:?} each");
    assert!(
        cached * 3 < uncached,
        "the verdict is not cached: {uncached:?} then {cached:?}"
    );
    let bob = basic("bob", "builder");
    assert_eq!(status(get(a, "/", &[("Authorization", &bob)])), 200);
    // Passwords and hashes never reach the log.
    let log = d.log_text();
    for secret in ["wonderland", "builder", "$2b$"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[test]
fn tls_presents_our_certificate_and_keeps_basic_auth() {
    let dir = scratch_dir("web-tls");
    let pki = Pki::write(&dir);
    let yml = format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  alice: {}\n",
        hash("wonderland", 4)
    );
    let d = Web::start_in(dir, &yml, "", "");
    let a = d.addr.as_str();
    let client = pki.client(None, BOTH);

    let (r, presented) = tls_get(a, client.clone(), "/metrics", &[]).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        presented.first(),
        Some(&pki.server),
        "not our server certificate"
    );
    let right = basic("alice", "wonderland");
    let (r, _) = tls_get(a, client.clone(), "/metrics", &[("Authorization", &right)]).unwrap();
    assert_eq!(r.status, 200);
    let wrong = basic("alice", "rabbit");
    let (r, _) = tls_get(a, client, "/metrics", &[("Authorization", &wrong)]).unwrap();
    assert_eq!(r.status, 401);
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(get(a, "/-/healthy", &[]).is_err());
}

#[test]
fn client_certificates_are_required_and_verified() {
    let dir = scratch_dir("web-mtls");
    let pki = Pki::write(&dir);
    let yml = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";
    let d = Web::start_in(dir, yml, "", "");
    let a = d.addr.as_str();

    let (r, _) = tls_get(a, pki.client(Some(&pki.client), BOTH), "/-/healthy", &[]).unwrap();
    assert_eq!(r.status, 200);
    let no_cert = tls_get(a, pki.client(None, BOTH), "/-/healthy", &[]);
    assert!(no_cert.is_err(), "served without a client certificate");
    let stranger = tls_get(a, pki.client(Some(&pki.stranger), BOTH), "/-/healthy", &[]);
    assert!(
        stranger.is_err(),
        "served a client certificate of another CA"
    );
}

#[test]
fn min_version_tls13_refuses_a_tls12_client() {
    let dir = scratch_dir("web-tls13");
    let pki = Pki::write(&dir);
    let yml = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n";
    let d = Web::start_in(dir, yml, "", "");
    let a = d.addr.as_str();
    let (r, _) = tls_get(a, pki.client(None, BOTH), "/-/healthy", &[]).unwrap();
    assert_eq!(r.status, 200);
    let old = tls_get(a, pki.client(None, TLS12_ONLY), "/-/healthy", &[]);
    assert!(old.is_err(), "a TLS 1.2 client was served");
}

#[test]
fn tls12_is_served_by_default() {
    let dir = scratch_dir("web-tls12");
    let pki = Pki::write(&dir);
    let yml = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    let d = Web::start_in(dir, yml, "", "");
    let (r, _) = tls_get(&d.addr, pki.client(None, TLS12_ONLY), "/-/healthy", &[]).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn the_example_file_works() {
    let dir = scratch_dir("web-example");
    let pki = Pki::write(&dir);
    std::fs::copy(dir.join("server.pem"), dir.join("server.crt")).unwrap();
    let example = common::read(&common::repo().join("web-config.example.yml"));
    let d = Web::start_in(dir, &example, "", "");
    let (r, presented) = tls_get(&d.addr, pki.client(None, BOTH), "/metrics", &[]).unwrap();
    assert_eq!(presented.first(), Some(&pki.server));
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("x-frame-options"), Some("deny"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn api_paths_take_bearer_tokens_instead_of_basic_auth() {
    let token = "a-long-enough-api-token";
    let yml = format!("basic_auth_users:\n  alice: {}\n", hash("wonderland", 4));
    let d = Web::start_in(
        scratch_dir("web-api"),
        &yml,
        "",
        &format!("[api]\nenabled = true\nbearer_tokens = [\"{token}\"]\n"),
    );
    let a = d.addr.as_str();
    let bearer = format!("Bearer {token}");
    // Past the bearer check: the audit id is unknown.
    let r = get(a, "/api/audit/status/nope", &[("Authorization", &bearer)]).unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    // Without a token: the API's own 401, which asks for a bearer token, not basic credentials.
    let r = get(a, "/api/audit/status/nope", &[]).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    // Basic credentials do not open the API.
    let right = basic("alice", "wonderland");
    let r = get(a, "/api/audit/status/nope", &[("Authorization", &right)]).unwrap();
    assert_eq!(r.status, 401);
    // A bearer token does not open the other paths.
    assert_eq!(
        status(get(a, "/metrics", &[("Authorization", &bearer)])),
        401
    );
    assert_eq!(
        status(get(a, "/metrics", &[("Authorization", &right)])),
        200
    );
}

// ---------------------------------------------------------------------------------------------
// Reloads and bad files

/// The README: a changed file applies within 3 s (the daemon looks every 3 s); a second or two
/// more for reading it and for a busy machine. Far less than two looks, so a missed one fails.
const RELOADED_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn a_changed_file_applies_without_restart_and_so_does_sighup() {
    let v1 = format!("basic_auth_users:\n  alice: {}\n", hash("one", 4));
    let d = Web::start("web-reload", &v1, "");
    let a = d.addr.as_str();
    let alice = basic("alice", "one");
    let bob = basic("bob", "two");
    assert_eq!(
        status(get(a, "/metrics", &[("Authorization", &alice)])),
        200
    );

    // Changed on disk: picked up by polling.
    d.rewrite(&format!("basic_auth_users:\n  bob: {}\n", hash("two", 4)));
    poll(RELOADED_WITHIN, "bob's credentials to work", || {
        (status(get(a, "/metrics", &[("Authorization", &bob)])) == 200).then_some(())
    });
    assert_eq!(
        status(get(a, "/metrics", &[("Authorization", &alice)])),
        401
    );

    // SIGHUP reloads even an unchanged file (polling would not: it logs nothing then).
    let reloads = |d: &Web| d.log_text().matches("web configuration reloaded").count();
    let before = reloads(&d);
    d.hup();
    poll(RELOADED_WITHIN, "SIGHUP to reload", || {
        (reloads(&d) > before).then_some(())
    });
    // And a changed file with SIGHUP.
    let carol = basic("carol", "three");
    d.rewrite(&format!(
        "basic_auth_users:\n  carol: {}\n",
        hash("three", 4)
    ));
    d.hup();
    poll(RELOADED_WITHIN, "carol's credentials to work", || {
        (status(get(a, "/metrics", &[("Authorization", &carol)])) == 200).then_some(())
    });
    assert_eq!(status(get(a, "/metrics", &[("Authorization", &bob)])), 401);
}

#[test]
fn a_new_certificate_applies_to_new_connections() {
    let dir = scratch_dir("web-rotate");
    let pki = Pki::write(&dir);
    let yml = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    let d = Web::start_in(dir.clone(), yml, "", "");
    let (_, first) = tls_get(&d.addr, pki.client(None, BOTH), "/-/healthy", &[]).unwrap();
    assert_eq!(first.first(), Some(&pki.server));
    // A new CA and server certificate in the same files; the client trusts only the new CA.
    let rotated = Pki::write(&dir);
    poll(RELOADED_WITHIN, "the new certificate", || {
        let (_, now) = tls_get(&d.addr, rotated.client(None, BOTH), "/-/healthy", &[]).ok()?;
        (now.first() == Some(&rotated.server)).then_some(())
    });
}

#[test]
fn a_bad_file_on_reload_keeps_the_old_configuration() {
    let v1 = format!("basic_auth_users:\n  alice: {}\n", hash("one", 4));
    let mut d = Web::start("web-bad-reload", &v1, "");
    let a = d.addr.as_str().to_owned();
    let alice = basic("alice", "one");
    d.rewrite("basic_auth_users:\n  alice: not-a-hash\nrate_limits: {}\n");
    poll(RELOADED_WITHIN, "the bad file to be reported", || {
        d.log_text()
            .lines()
            .find(|l| l.contains("bad web configuration; keeping the previous one"))
            .map(str::to_owned)
    });
    d.hup();
    poll(RELOADED_WITHIN, "SIGHUP's report", || {
        (d.log_text()
            .matches("bad web configuration; keeping the previous one")
            .count()
            >= 2)
            .then_some(())
    });
    let log = d.log_text();
    assert!(log.contains("rate_limits"), "the key is not named:\n{log}");
    assert!(d.alive(), "the daemon exited on a bad reload");
    assert_eq!(
        status(get(&a, "/metrics", &[("Authorization", &alice)])),
        200
    );
    assert_eq!(status(get(&a, "/metrics", &[])), 401);
}

#[test]
fn a_bad_web_config_at_startup_exits_64_naming_the_key() {
    let dir = scratch_dir("web-bad");
    Pki::write(&dir);
    let cases = [
        ("tls_server_config:\n  cert_fle: server.pem\n", "cert_fle"),
        (
            "basic_auth_users:\n  alice: plaintext\n",
            "basic_auth_users.alice",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: Always\n",
            "tls_server_config.client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n",
            "tls_server_config.cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            "tls_server_config.cipher_suites",
        ),
        (
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file",
        ),
        ("rate_limit:\n  interval: 1s\n  burst: 5\n", "rate_limit"),
        (
            "http_server_config:\n  headers:\n    Server: me\n",
            "http_server_config.headers.Server",
        ),
        ("tls_server_config: [\n", "web.yml"),
    ];
    let config = dir.join("config.toml");
    // Refused before binding; were it accepted, port 0 never collides.
    let listen = "127.0.0.1:0";
    std::fs::write(&config, toml(listen, "")).unwrap();
    for (yml, needle) in cases {
        std::fs::write(dir.join("web.yml"), yml).unwrap();
        let web = dir.join("web.yml");
        let (code, stderr) = refused(&[
            "--config".as_ref(),
            config.as_ref(),
            "--web.config.file".as_ref(),
            web.as_ref(),
        ]);
        assert_eq!(code, Some(64), "{yml}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{yml}: {stderr}");
        assert!(stderr.contains(needle), "{yml}: {stderr}");
        assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    }
    // The TOML key works as the flag does, and a missing file is an error too.
    let with_key = toml(
        listen,
        &format!("web_config_file = \"{}\"", dir.join("nope.yml").display()),
    );
    std::fs::write(&config, with_key).unwrap();
    let (code, stderr) = refused(&["--config".as_ref(), config.as_ref()]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("nope.yml"), "{stderr}");
    // The connection cap is validated with the rest of the TOML.
    std::fs::write(&config, toml(listen, "max_connections = 0")).unwrap();
    let (code, stderr) = refused(&["--config".as_ref(), config.as_ref()]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("server.max_connections"), "{stderr}");
    // check-config vouches for the web configuration as well.
    std::fs::write(&config, toml(listen, "")).unwrap();
    std::fs::write(dir.join("web.yml"), "tls_server_config:\n  cert_fle: x\n").unwrap();
    let web = dir.join("web.yml");
    let (code, stderr) = refused(&[
        "check-config".as_ref(),
        "--config".as_ref(),
        config.as_ref(),
        "--web.config.file".as_ref(),
        web.as_ref(),
    ]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("cert_fle"), "{stderr}");
}

/// Runs the binary with `args`, expecting it to exit rather than serve: its exit code and stderr.
fn refused(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = exit_within(args, Duration::from_secs(15), "the bad file was accepted");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// Limits

/// Reads until the server closes the connection; returns how long that took.
fn wait_for_close(s: &mut impl Read) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                panic!("still open after {:?}", started.elapsed())
            }
            Err(_) => return started.elapsed(),
        }
    }
}

/// Waits for the server to close every connection, all at once; each must close within 15 s.
fn assert_all_closed_within_15s<const N: usize>(conns: [(&'static str, TcpStream); N]) {
    let waits =
        conns.map(|(what, mut s)| (what, std::thread::spawn(move || wait_for_close(&mut s))));
    for (what, wait) in waits {
        let took = wait.join().unwrap();
        eprintln!("{what}: closed after {took:?}");
        assert!(
            took < Duration::from_secs(15),
            "{what}: closed after {took:?}"
        );
    }
}

#[test]
fn slow_clients_are_disconnected() {
    let dir = scratch_dir("web-slow");
    Pki::write(&dir);
    let plain = Web::start("web-slow-plain", "", "");
    let yml = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    let tls = Web::start_in(dir, yml, "", "");
    // Half a request line, then nothing.
    let mut half = connect(&plain.addr);
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: loc")
        .unwrap();
    // An idle keep-alive connection after a response.
    let mut idle = connect(&plain.addr);
    idle.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A TLS client that never says hello.
    let silent = connect(&tls.addr);
    assert_all_closed_within_15s([
        ("half a header", half),
        ("idle keep-alive", idle),
        ("no TLS hello", silent),
    ]);
}

#[test]
fn oversize_headers_get_431() {
    let d = Web::start("web-431", "", "");
    let big = "x".repeat(20 * 1024);
    let r = get(&d.addr, "/metrics", &[("X-Big", &big)]).unwrap();
    assert_eq!(r.status, 431, "{r:?}");
    // A large but sane head is fine.
    let fine = "x".repeat(6 * 1024);
    assert_eq!(status(get(&d.addr, "/metrics", &[("X-Fine", &fine)])), 200);
}

/// Whether the server closed `s` (a read returns at once) rather than leaving it open.
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connections_that_send_no_request_are_closed_at_the_head_deadline() {
    let auto = Web::start("web-silent", "", "");
    let h1 = Web::start("web-silent-h1", "http_server_config:\n  http2: false\n", "");
    // Nothing at all, where the server tells HTTP/1 from HTTP/2 by the first bytes.
    let silent = connect(&auto.addr);
    // Half the HTTP/2 preface: still telling.
    let mut preface = connect(&auto.addr);
    preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    // Nothing at all on an HTTP/1-only server.
    let silent_h1 = connect(&h1.addr);
    // The deadline is 10 s from the accept.
    assert_all_closed_within_15s([
        ("silent", silent),
        ("half a preface", preface),
        ("silent, HTTP/1 only", silent_h1),
    ]);
}

#[test]
fn at_the_cap_the_oldest_connection_waiting_for_a_request_makes_room() {
    let d = Web::start("web-cap", "", "max_connections = 8");
    let a = d.addr.as_str();
    // Strangers take every slot: silent ones and slow ones (half a head each). The server takes
    // connections in order, so they are in before the scraper's.
    let mut strangers: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = connect(a);
            if i % 2 == 1 {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .unwrap();
            }
            s
        })
        .collect();
    // The scraper is served at once, each time.
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(status(get(a, "/metrics", &[])), 200);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "served after {took:?}");
    }
    // The first scrape made room by closing one stranger (the one waiting longest: see the
    // unit test in src/http.rs); its slot is free for the next two once the server has seen
    // the previous scrape's connection close, which may come after the next connect: each of
    // those may close one more. The others are still open.
    let closed: Vec<usize> = (0..strangers.len())
        .filter(|&i| closed(&mut strangers[i]))
        .collect();
    assert!(
        (1..=3).contains(&closed.len()),
        "closed strangers: {closed:?}"
    );
}

#[test]
fn at_the_cap_with_every_request_in_flight_a_new_connection_waits() {
    let d = Web::start_in(
        scratch_dir("web-cap-busy"),
        "",
        "max_connections = 1",
        &format!("[api]\nenabled = true\nbearer_tokens = [\"{API_TOKEN}\"]\n"),
    );
    let a = d.addr.as_str();
    // A request in flight: its handler waits for the body. It asks for `100 Continue`, which
    // hyper sends when the handler starts reading: then the request is in flight for sure.
    let mut busy = connect(a);
    busy.write_all(
        format!(
            "POST /api/audit/start HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = busy.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The next connection is not served meanwhile, nor is the busy one closed for it.
    let mut next = connect(a);
    next.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    next.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    match next.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("served while every slot had a request in flight: {other:?}"),
    }
    // The body's end: the busy request is answered and its connection waits for the next
    // request, so it makes room.
    busy.write_all(b"{}}}").unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = busy.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 4"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let started = Instant::now();
    next.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let n = next.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "served {took:?} after a slot could be freed"
    );
}

// ---------------------------------------------------------------------------------------------
// Protocol details

/// Writes `request` as is and reads whatever comes back until the server closes or 10 s pass.
fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const API_TOKEN: &str = "a-long-enough-api-token";

fn with_api(tag: &str) -> Web {
    Web::start_in(
        scratch_dir(tag),
        "",
        "",
        &format!("[api]\nenabled = true\nbearer_tokens = [\"{API_TOKEN}\"]\n"),
    )
}

#[test]
fn an_http11_request_without_host_gets_400() {
    let d = with_api("web-host");
    let a = d.addr.as_str();
    let answer = raw(a, b"GET /-/healthy HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    // Two Host headers are as bad (RFC 9112, section 3.2).
    let answer = raw(
        a,
        b"GET /-/healthy HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    // The API answers in JSON.
    let answer = raw(
        a,
        b"GET /api/audit/status/x HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(answer.contains("{\"error\":"), "{answer:?}");
    // HTTP/1.0 has no Host requirement.
    let answer = raw(a, b"GET /-/healthy HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer:?}");
}

#[test]
fn expect_100_continue_with_too_large_a_body_gets_413_at_once() {
    let d = with_api("web-expect");
    // api.max_body_bytes is 16 KiB by default.
    let request = format!(
        "POST /v1/iam/old-access-keys/credential-report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n"
    );
    // The body is never sent: the answer must come without it.
    let answer = raw(&d.addr, request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "not an immediate 413: {answer:?}"
    );
    assert!(!answer.contains("100 Continue"), "{answer:?}");
    assert!(answer.contains("{\"error\":"), "{answer:?}");
}

#[test]
fn rejected_http2_posts_with_bodies_end_cleanly() {
    let yml = format!("basic_auth_users:\n  alice: {}\n", hash("wonderland", 4));
    let d = Web::start_in(
        scratch_dir("web-h2-reject"),
        &yml,
        "",
        &format!("[api]\nenabled = true\nbearer_tokens = [\"{API_TOKEN}\"]\n"),
    );
    let bearer = format!("Bearer {API_TOKEN}");
    let alice = basic("alice", "wonderland");
    // (path, Authorization, expected status): the API without a token, a GET-only API path,
    // basic auth missing, and a method /metrics does not take.
    let cases = [
        ("/api/audit/start", None, 401),
        ("/v1/iam/old-access-keys/list-users", Some(bearer), 405),
        ("/metrics", None, 401),
        ("/metrics", Some(alice), 405),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let failures = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&d.addr).await.unwrap();
        let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let mut failures = Vec::new();
        // A stream's reset (RST_STREAM) has reached the client by the time the next stream's
        // answer has: the server writes them in that order.
        let mut previous: Option<(String, h2::SendStream<bytes::Bytes>)> = None;
        for round in 0..50 {
            for (path, auth, want) in &cases {
                let mut req = hyper::Request::post(format!("http://{}{path}", d.addr));
                if let Some(auth) = auth {
                    req = req.header("authorization", auth.as_str());
                }
                let req = req.body(()).unwrap();
                let what = format!("round {round} POST {path}");
                let (answer, mut body) = client.send_request(req, false).unwrap();
                // 12 KiB (within api.max_body_bytes) in 1 KiB frames, each written on its own
                // turn as a client streaming a file does, while the answer is awaited: a
                // server that answers at once answers while the body is still on its way.
                let send = async {
                    for i in 0..12 {
                        let chunk = bytes::Bytes::from(vec![b'{'; 1024]);
                        if let Err(e) = body.send_data(chunk, i == 11) {
                            return Err(format!("sending the body: {e}"));
                        }
                        tokio::task::yield_now().await;
                    }
                    Ok(())
                };
                let (sent, answer) = tokio::join!(send, answer);
                if let Err(e) = sent {
                    failures.push(format!("{what}: {e}"));
                }
                match answer {
                    Ok(r) if r.status().as_u16() == *want => {
                        let mut data = r.into_body();
                        while let Some(chunk) = data.data().await {
                            if let Err(e) = chunk {
                                failures.push(format!("{what}: response body: {e}"));
                                break;
                            }
                        }
                    }
                    Ok(r) => failures.push(format!("{what}: {}, want {want}", r.status())),
                    Err(e) => failures.push(format!("{what}: {e}")),
                }
                if let Some((what, mut stream)) = previous.replace((what, body)) {
                    reset_of(&mut stream, &what, &mut failures);
                }
                client = client.ready().await.unwrap();
            }
        }
        // One more exchange, so that the last POST's reset (if any) has arrived too.
        let (answer, _) = client
            .send_request(
                hyper::Request::get(format!("http://{}/-/healthy", d.addr))
                    .body(())
                    .unwrap(),
                true,
            )
            .unwrap();
        answer.await.unwrap();
        if let Some((what, mut stream)) = previous {
            reset_of(&mut stream, &what, &mut failures);
        }
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of {} POSTs did not end cleanly, e.g. {:?}",
        failures.len(),
        50 * cases.len(),
        &failures[..failures.len().min(3)]
    );
}

/// Records a reset of `stream` by the server, whatever its reason: a client still sending the
/// request body takes even NO_ERROR as a failed upload (curl: "Stream error in the HTTP/2
/// framing layer").
fn reset_of(stream: &mut h2::SendStream<bytes::Bytes>, what: &str, failures: &mut Vec<String>) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if let std::task::Poll::Ready(Ok(reason)) = stream.poll_reset(&mut cx) {
        failures.push(format!("{what}: the server reset the stream ({reason:?})"));
    }
}

/// The daemon under `sh -c 'ulimit ...; exec infraaudit'`, until it serves; its log.
fn start_with_ulimit(tag: &str, ulimit: &str) -> (Child, PathBuf) {
    let dir = scratch_dir(tag);
    std::fs::write(dir.join("config.toml"), toml("127.0.0.1:0", "")).unwrap();
    let log = dir.join("infraaudit.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = aws_test_env(&mut Command::new("sh"))
        .arg("-c")
        .arg(format!("{ulimit} && exec \"$0\" --config \"$1\""))
        .arg(env!("CARGO_BIN_EXE_infraaudit"))
        .arg(dir.join("config.toml"))
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    serving_address(&mut child, &log);
    (child, log)
}

/// (soft, hard) "Max open files" of a process.
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut n = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    (n.next().unwrap(), n.next().unwrap())
}

#[test]
fn the_file_descriptor_limit_is_raised_and_the_cap_kept_below_it() {
    // A low soft limit under a higher hard one, as systemd sets them (1024 / 524288): raised.
    let (mut child, log) = start_with_ulimit("web-nofile", "ulimit -Sn 256");
    let (soft, hard) = nofile(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        hard > 256,
        "the hard limit here is {hard}: nothing to raise"
    );
    assert_eq!(soft, hard, "{}", common::read(&log));
    // A hard limit below what the default cap needs: the cap is lowered, with a warning.
    let (mut child, log) = start_with_ulimit("web-nofile-low", "ulimit -n 1500");
    let (soft, _) = nofile(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(soft, 1500);
    let text = common::read(&log);
    let warning = text
        .lines()
        .find(|l| l.contains("server.max_connections is above"))
        .unwrap_or_else(|| panic!("no warning:\n{text}"));
    assert!(warning.contains("using=750"), "{warning}");
}
