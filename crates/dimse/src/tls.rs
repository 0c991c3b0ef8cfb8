//! DICOM over TLS (PS3.15 Annex B, the BCP 195 profile), both ways: the
//! listener's TLS port ([`TlsAcceptor`]) and associations triaged opens to a
//! destination ([`ClientTlsSettings`]).
//!
//! TLS is dicom-ul's own (rustls, with ring as the one crypto provider, both
//! compiled by cargo): the handshake and the association run on one stream,
//! so an association over TLS is served by the same handler, under the same
//! policy (checked against the peer's real address), limits and timeouts as
//! one over plain TCP. Protocol versions are TLS 1.2 and 1.3; rustls offers
//! only forward-secret AES-GCM and ChaCha20-Poly1305 suites, which is what
//! BCP 195 asks of DICOM nodes.
//!
//! Files are read and checked when a configuration is built, so a bad path,
//! a file without a PEM certificate or a key that does not match its
//! certificate is reported naming the setting it came from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Where the TLS listener's certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server certificate chain (PEM), leaf first.
    pub certificate: PathBuf,
    /// The certificate's private key (PEM, unencrypted).
    pub private_key: PathBuf,
    /// Certificate authorities (PEM) that sign client certificates. When
    /// set, a client must present a certificate that verifies against them;
    /// when absent, clients are not asked for one.
    pub client_ca: Option<PathBuf>,
}

/// How triaged calls a peer over TLS: whom it trusts, and what it shows
/// when the peer asks for a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsSettings {
    /// Certificate authorities (PEM) the peer's certificate must verify
    /// against; the certificate must also name the host called (a DNS name
    /// or an IP address in its subject alternative names).
    pub ca_file: PathBuf,
    /// Our certificate chain (PEM, leaf first) and its key, for peers that
    /// require client certificates.
    pub identity: Option<Identity>,
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `field` names the settings field the file came from.
    #[error("{field} {}: {detail}", path.display())]
    File {
        field: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// Accepts TLS connections with one configuration (certificate, key,
/// client verification), shared by every connection.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

/// The one crypto provider, named rather than left to rustls' process-wide
/// default, which a second provider compiled in would make ambiguous.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsAcceptor {
    /// Loads and checks the files now, so a bad path or a key that does not
    /// match its certificate stops the daemon at start-up, naming the file.
    pub fn new(settings: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(setup)?;
        let builder = match &settings.client_ca {
            Some(ca) => {
                // Trusted for verifying clients, and named in the request so
                // a client with several certificates picks the right one.
                let roots = Arc::new(roots("client_ca", ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| file_error("client_ca", ca, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let (chain, key) = identity(&settings.certificate, &settings.private_key)?;
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| key_error(&settings.certificate, &settings.private_key, e))?;
        Ok(TlsAcceptor {
            config: Arc::new(config),
        })
    }

    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

impl ClientTlsSettings {
    /// The rustls configuration for one association, read from the files
    /// now: a renewed certificate is used from the next association on.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(setup)?
            .with_root_certificates(roots("ca_file", &self.ca_file)?);
        let config = match &self.identity {
            Some(id) => {
                let (chain, key) = identity(&id.certificate, &id.private_key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| key_error(&id.certificate, &id.private_key, e))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// The trust anchors in a PEM file; at least one.
fn roots(field: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(field, path)? {
        store.add(cert).map_err(|e| file_error(field, path, e))?;
    }
    Ok(store)
}

/// A certificate chain and its key (the settings' `certificate` and
/// `private_key` on either side).
fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certificates("certificate", cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("private_key", key, e))?;
    Ok((chain, key))
}

/// The PEM certificates in the file `settings.<field>` names; at least one.
fn certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(field, path, e))?;
    if certs.is_empty() {
        return Err(file_error(field, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// A certificate and key rustls cannot use together, named by the file at
/// fault: the certificate when rustls refuses it (an X.509 v1 certificate,
/// say), else the key.
fn key_error(cert: &Path, key: &Path, e: rustls::Error) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(_) => file_error(
            "private_key",
            key,
            format!("does not match the certificate {}", cert.display()),
        ),
        e @ rustls::Error::InvalidCertificate(_) => file_error("certificate", cert, e),
        e => file_error("private_key", key, e),
    }
}

fn setup(e: rustls::Error) -> TlsError {
    TlsError::Setup(e.to_string())
}

fn file_error(field: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        field,
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_by_its_field() {
        let settings = ClientTlsSettings {
            ca_file: "/nonexistent/ca.pem".into(),
            identity: None,
        };
        match settings.client_config() {
            Err(TlsError::File { field, path, .. }) => {
                assert_eq!(field, "ca_file");
                assert_eq!(path, PathBuf::from("/nonexistent/ca.pem"));
            }
            other => panic!("expected a file error, got {other:?}"),
        }
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("dimse-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let settings = TlsSettings {
            certificate: empty.clone(),
            private_key: empty.clone(),
            client_ca: None,
        };
        let e = TlsAcceptor::new(&settings).unwrap_err();
        assert!(
            matches!(&e, TlsError::File { field: "certificate", detail, .. } if detail.contains("no PEM certificate")),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
