//! A minimal HTTPS client for tests of the secure server (feature `testing`): one HTTP/1.1 request per connection,
//! trusting exactly the certificate the server presents (its self-signed leaf) and checking it for `localhost`.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer: status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body (the whole response when it could not be split).
    pub body: String,
}

/// `GET path` over TLS to `address`, with `Authorization: Bearer token` when `token` is given. Panics on a TLS or
/// connection failure (a test failure).
pub async fn get(address: SocketAddr, trust: &CertificateDer<'static>, path: &str, token: Option<&str>) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).expect("trust the server certificate");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{auth}connection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("send the request");
    let mut raw = Vec::new();
    // A peer that closes without close_notify ends the read with an error after the whole response.
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = match text.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_owned(),
        None => text,
    };
    Answer { status, body }
}
