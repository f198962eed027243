//! The serving certificate: read from PEM files (`--tls-cert-file`, `--tls-private-key-file`), or generated and
//! self-signed at start, as kube-controller-manager does when it is given none. rustls with the ring provider.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How long a generated certificate is valid (upstream's one year). It is generated anew at every start.
const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Where the serving certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateSource {
    /// A PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
    Files {
        /// `--tls-cert-file`.
        cert: PathBuf,
        /// `--tls-private-key-file`.
        key: PathBuf,
    },
    /// A key and a certificate generated in memory at start, for these DNS names and IP addresses.
    SelfSigned {
        /// Subject alternative names.
        hosts: Vec<String>,
    },
}

/// The certificate cannot be read, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("read {what} {path}")]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The self-signed certificate cannot be generated.
    #[error("generate a self-signed certificate")]
    Generate(#[source] rcgen::Error),
    /// rustls refuses the certificate and key (a key that does not match, an unsupported key type).
    #[error("use the serving certificate")]
    Config(#[source] rustls::Error),
}

/// A serving certificate chain and its key.
#[derive(Debug)]
pub struct ServingCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    self_signed: bool,
}

impl ServingCertificate {
    /// Reads or generates the certificate `source` names.
    pub fn load(source: &CertificateSource) -> Result<Self, TlsError> {
        match source {
            CertificateSource::Files { cert, key } => Self::from_files(cert, key),
            CertificateSource::SelfSigned { hosts } => Self::self_signed(hosts),
        }
    }

    /// Reads a PEM chain and key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        fn read<'a>(what: &'static str, path: &'a Path) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError + 'a {
            move |source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            }
        }
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(read("certificate", cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read("certificate", cert))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { path: cert.to_owned() });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(read("private key", key))?;
        Ok(Self {
            chain,
            key,
            self_signed: false,
        })
    }

    /// Generates an ECDSA P-256 key and a certificate for `hosts` (DNS names or IP addresses) signed by itself,
    /// valid from an hour ago (clock skew) for a year.
    pub fn self_signed(hosts: &[String]) -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
        let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(TlsError::Generate)?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("{}@self-signed", hosts.first().map_or("localhost", String::as_str)),
        );
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + SELF_SIGNED_VALIDITY;
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
        Ok(Self {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            self_signed: true,
        })
    }

    /// The leaf certificate (a client may trust it directly when it is self-signed).
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// Whether it was generated at start.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// The SHA-256 fingerprint of the leaf, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.leaf().as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3, no client certificates, ALPN h2 and
    /// http/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(TlsError::Config)?
                .with_no_client_auth()
                .with_single_cert(self.chain.clone(), self.key.clone_key())
                .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The names a generated certificate covers: `localhost`, the loopback addresses, this machine's host name (the
/// node's name under `hostNetwork`) and the bind address when it is a specific one.
pub fn self_signed_hosts(bind: IpAddr) -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() && rcgen::string::Ia5String::try_from(name).is_ok() {
            hosts.push(name.to_owned());
        }
    }
    if !bind.is_unspecified() && !bind.is_loopback() {
        hosts.push(bind.to_string());
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_covers_the_hosts_and_is_usable() {
        let hosts = self_signed_hosts("192.0.2.10".parse().unwrap());
        assert_eq!(&hosts[..3], ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(hosts.last().map(String::as_str), Some("192.0.2.10"));
        let cert = ServingCertificate::self_signed(&hosts).unwrap();
        assert!(cert.is_self_signed());
        cert.server_config().unwrap();
        assert_eq!(cert.fingerprint().len(), 32 * 3 - 1);
        assert!(!self_signed_hosts("0.0.0.0".parse().unwrap()).contains(&"0.0.0.0".to_owned()));
    }

    #[test]
    fn files_are_read_and_bad_ones_named() {
        let dir = std::env::temp_dir().join(format!("cloudprovider-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let loaded = ServingCertificate::load(&CertificateSource::Files {
            cert: cert_path.clone(),
            key: key_path.clone(),
        })
        .unwrap();
        assert!(!loaded.is_self_signed());
        assert_eq!(loaded.leaf(), cert.der());
        loaded.server_config().unwrap();

        let missing = ServingCertificate::from_files(&dir.join("nope.crt"), &key_path).unwrap_err();
        assert!(
            matches!(&missing, TlsError::Read { what: "certificate", path, .. } if path.ends_with("nope.crt")),
            "{missing:?}"
        );
        let swapped = ServingCertificate::from_files(&key_path, &key_path).unwrap_err();
        assert!(matches!(swapped, TlsError::NoCertificate { .. }), "{swapped:?}");
        let other_key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key_path, other_key.serialize_pem()).unwrap();
        let mismatched = ServingCertificate::from_files(&cert_path, &key_path)
            .unwrap()
            .server_config()
            .unwrap_err();
        assert!(matches!(mismatched, TlsError::Config(_)), "{mismatched:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
