//! `tls_server_config` -> a rustls server configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoClientAuth, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use rustls::{SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use super::{RawTls, WebConfigError, set};

/// The exporter-toolkit's `client_auth_type` values (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

const CLIENT_AUTH: [(&str, ClientAuth); 6] = [
    ("NoClientCert", ClientAuth::NoClientCert),
    ("RequestClientCert", ClientAuth::RequestClientCert),
    ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
    // The exporter-toolkit's old name of RequireAnyClientCert.
    ("RequireClientCert", ClientAuth::RequireAnyClientCert),
    (
        "VerifyClientCertIfGiven",
        ClientAuth::VerifyClientCertIfGiven,
    ),
    (
        "RequireAndVerifyClientCert",
        ClientAuth::RequireAndVerifyClientCert,
    ),
];

/// TLS versions by the exporter-toolkit's names; 1.0 and 1.1 are not implemented by rustls.
fn version(key: &str, name: Option<&str>, default: u8) -> Result<u8, WebConfigError> {
    match name {
        None => Ok(default),
        Some("TLS10") => Ok(10),
        Some("TLS11") => Ok(11),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(_) => Err(WebConfigError::new(
            key,
            "unknown TLS version; one of TLS10, TLS11, TLS12, TLS13",
        )),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The server configuration, or None when the section configures nothing (plain HTTP, as in
/// the exporter-toolkit). `files` holds the contents of the `*_file` keys, already read.
pub(super) fn server_config(
    t: &RawTls,
    files: &BTreeMap<&'static str, Vec<u8>>,
    http2: bool,
) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
    let k = |name: &str| format!("tls_server_config.{name}");
    for (name, unsupported) in [
        ("cipher_suites", t.cipher_suites.as_ref()),
        ("curve_preferences", t.curve_preferences.as_ref()),
        ("client_allowed_sans", t.client_allowed_sans.as_ref()),
    ] {
        if unsupported.is_some_and(|v| !v.is_empty()) {
            return Err(WebConfigError::new(
                k(name),
                "not supported by infraaudit; remove it (rustls chooses safe defaults)",
            ));
        }
    }
    let enabled = [
        &t.cert,
        &t.key,
        &t.client_ca,
        &t.cert_file,
        &t.key_file,
        &t.client_ca_file,
        &t.client_auth_type,
    ]
    .iter()
    .any(|v| set(v).is_some());
    if !enabled {
        return Ok(None);
    }
    let auth_name = set(&t.client_auth_type).unwrap_or("NoClientCert");
    let auth = CLIENT_AUTH
        .iter()
        .find(|(n, _)| *n == auth_name)
        .map(|(_, a)| *a)
        .ok_or_else(|| {
            let names: Vec<&str> = CLIENT_AUTH.iter().map(|(n, _)| *n).collect();
            WebConfigError::new(
                k("client_auth_type"),
                format!("unknown value; one of {}", names.join(", ")),
            )
        })?;
    // Inline PEM or a file, not both.
    let pem = |inline: &'static str,
               file: &'static str,
               inline_v: &Option<String>,
               file_v: &Option<String>|
     -> Result<Option<Vec<u8>>, WebConfigError> {
        match (set(inline_v), set(file_v)) {
            (Some(_), Some(_)) => Err(WebConfigError::new(
                k(inline),
                format!("only one of {inline} and {file}"),
            )),
            (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
            (None, Some(_)) => Ok(files.get(k(file).as_str()).cloned()),
            (None, None) => Ok(None),
        }
    };
    let cert_pem = pem("cert", "cert_file", &t.cert, &t.cert_file)?
        .ok_or_else(|| WebConfigError::new(k("cert_file"), "missing: one of cert or cert_file"))?;
    let key_pem = pem("key", "key_file", &t.key, &t.key_file)?
        .ok_or_else(|| WebConfigError::new(k("key_file"), "missing: one of key or key_file"))?;
    let ca_pem = pem(
        "client_ca",
        "client_ca_file",
        &t.client_ca,
        &t.client_ca_file,
    )?;
    let cert_key = if set(&t.cert_file).is_some() {
        k("cert_file")
    } else {
        k("cert")
    };
    let key_key = if set(&t.key_file).is_some() {
        k("key_file")
    } else {
        k("key")
    };
    let ca_key = if set(&t.client_ca_file).is_some() {
        k("client_ca_file")
    } else {
        k("client_ca")
    };

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| WebConfigError::new(&cert_key, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(WebConfigError::new(cert_key, "no PEM certificate in it"));
    }
    // The key's own parse error is not shown: it could quote part of the key.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        WebConfigError::new(
            &key_key,
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) in it",
        )
    })?;

    let roots = match &ca_pem {
        None => None,
        Some(pem) => {
            let mut store = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    WebConfigError::new(&ca_key, format!("not PEM certificates: {e}"))
                })?;
                store.add(cert).map_err(|e| {
                    WebConfigError::new(&ca_key, format!("not a usable CA certificate: {e}"))
                })?;
            }
            if store.is_empty() {
                return Err(WebConfigError::new(ca_key, "no PEM certificate in it"));
            }
            Some(Arc::new(store))
        }
    };
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match (auth, roots) {
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(WebConfigError::new(
                ca_key,
                "a client CA needs a client_auth_type other than NoClientCert",
            ));
        }
        (ClientAuth::NoClientCert, None) => Arc::new(NoClientAuth),
        (ClientAuth::RequestClientCert, _) => Arc::new(AnyClientCert::new(&provider, false)),
        (ClientAuth::RequireAnyClientCert, _) => Arc::new(AnyClientCert::new(&provider, true)),
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => {
            return Err(WebConfigError::new(
                k("client_ca_file"),
                format!("missing: {auth_name} needs client_ca_file or client_ca"),
            ));
        }
        (ClientAuth::VerifyClientCertIfGiven, Some(roots)) => {
            WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| WebConfigError::new(&ca_key, e.to_string()))?
        }
        (ClientAuth::RequireAndVerifyClientCert, Some(roots)) => {
            WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| WebConfigError::new(&ca_key, e.to_string()))?
        }
    };

    let min = version(&k("min_version"), set(&t.min_version), 12)?;
    let max = version(&k("max_version"), set(&t.max_version), 13)?;
    if max < 12 {
        return Err(WebConfigError::new(
            k("max_version"),
            "TLS 1.0 and 1.1 are not supported; TLS12 or TLS13",
        ));
    }
    if min > max {
        return Err(WebConfigError::new(
            k("min_version"),
            "must not be above max_version",
        ));
    }
    if min < 12 {
        // Stricter than asked, never weaker: rustls has no TLS 1.0 or 1.1.
        tracing::warn!("tls_server_config.min_version below TLS12: TLS 1.2 is the minimum served");
    }
    let versions: Vec<&'static SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min.max(12)..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| WebConfigError::new(k("min_version"), e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| WebConfigError::new(key_key, format!("does not fit the certificate: {e}")))?;
    // The exporter-toolkit's default is true; false lets the client's order win.
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Some(Arc::new(config)))
}

/// RequestClientCert and RequireAnyClientCert: a certificate is asked for (and for the latter
/// required) and must sign the handshake, but its chain is not verified, as in Go.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    mandatory: bool,
}

impl AnyClientCert {
    fn new(provider: &CryptoProvider, mandatory: bool) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
            mandatory,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
