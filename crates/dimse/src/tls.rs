//! DICOM over TLS (PS3.15 Annex B, the BCP 195 profile): the TLS session
//! ends here, in Debian's OpenSSL, and the decrypted byte stream reaches
//! the same association [`Handler`](crate::handler) as plain TCP through a
//! loopback socket pair the daemon opens for it.
//!
//! Why the detour: dicom-ul's server negotiates only over a tokio
//! `TcpStream`, and its own TLS support needs rustls with a crypto provider
//! (ring or aws-lc-rs) that compiles C sources Debian does not ship, which
//! the project's build rules exclude. The pair costs one local copy of the
//! bytes; the handler, its policy (checked against the real peer address,
//! not the loopback one), limits and timeouts are exactly those of plain
//! associations.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslVerifyMode, SslVersion};
use openssl::stack::Stack;
use openssl::x509::X509;
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

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

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `field` names the [`TlsSettings`] field the file came from.
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
    acceptor: Arc<SslAcceptor>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

/// The decrypted side of a TLS connection, and the task that pumps bytes
/// between it and the peer: run both until either ends.
pub(crate) struct Terminated {
    pub stream: TcpStream,
    pub pump: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl TlsAcceptor {
    /// Loads and checks the files now, so a bad path or a key that does not
    /// match its certificate stops the daemon at start-up, naming the file.
    pub fn new(settings: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
        let setup = |e: openssl::error::ErrorStack| TlsError::Setup(e.to_string());
        // Mozilla's "intermediate" settings: TLS 1.2 and 1.3, forward-secret
        // AES-GCM and ChaCha20 suites; what BCP 195 asks of DICOM nodes.
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setup)?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(setup)?;
        // The server's chain, leaf first, and the leaf's key.
        let (cert_path, key_path) = (&settings.certificate, &settings.private_key);
        let chain = certificates("certificate", cert_path)?;
        let leaf = &chain[0];
        b.set_certificate(leaf)
            .map_err(|e| file_error("certificate", cert_path, e))?;
        for intermediate in &chain[1..] {
            b.add_extra_chain_cert(intermediate.clone())
                .map_err(|e| file_error("certificate", cert_path, e))?;
        }
        let key = std::fs::read(key_path)
            .map_err(|e| file_error("private_key", key_path, e))
            .and_then(|pem| {
                PKey::private_key_from_pem(&pem).map_err(|e| file_error("private_key", key_path, e))
            })?;
        if !leaf.public_key().is_ok_and(|public| public.public_eq(&key)) {
            let detail = format!("does not match the certificate {}", cert_path.display());
            return Err(file_error("private_key", key_path, detail));
        }
        b.set_private_key(&key)
            .map_err(|e| file_error("private_key", key_path, e))?;
        if let Some(ca) = &settings.client_ca {
            // Trusted for verifying clients, and named in the request so a
            // client with several certificates picks the right one.
            let mut names = Stack::new().map_err(setup)?;
            for cert in certificates("client_ca", ca)? {
                names
                    .push(cert.subject_name().to_owned().map_err(setup)?)
                    .map_err(setup)?;
                b.cert_store_mut().add_cert(cert).map_err(setup)?;
            }
            b.set_client_ca_list(names);
            b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        } else {
            b.set_verify(SslVerifyMode::NONE);
        }
        Ok(TlsAcceptor {
            acceptor: Arc::new(b.build()),
        })
    }

    /// The TLS handshake on `socket`, within `deadline`; then the loopback
    /// pair. The handler reads and writes `stream`; `pump` carries the bytes.
    pub(crate) async fn terminate(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
        deadline: Duration,
    ) -> std::io::Result<Terminated> {
        let ssl = Ssl::new(self.acceptor.context()).map_err(std::io::Error::other)?;
        let mut tls = SslStream::new(ssl, socket).map_err(std::io::Error::other)?;
        match tokio::time::timeout(deadline, Pin::new(&mut tls).accept()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(std::io::Error::other(describe(&e))),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "TLS handshake not finished in time",
                ))
            }
        }
        tracing::debug!(
            %peer,
            version = tls.ssl().version_str(),
            cipher = tls.ssl().current_cipher().map(|c| c.name()).unwrap_or("?"),
            client_certificate = tls.ssl().peer_certificate().is_some(),
            "TLS session established"
        );
        let (inner, mut outer) = loopback_pair().await?;
        let pump = Box::pin(async move {
            let mut tls = tls;
            // Ends when either side closes; then both are closed.
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut outer).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        });
        Ok(Terminated {
            stream: inner,
            pump,
        })
    }
}

/// Two connected loopback sockets. Only the connection we open ourselves is
/// taken: the listening socket lives for one accept, and a stranger that
/// raced us to it is refused.
async fn loopback_pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let outer = TcpStream::connect(listener.local_addr()?).await?;
    let ours = outer.local_addr()?;
    loop {
        let (inner, from) = listener.accept().await?;
        if from == ours {
            inner.set_nodelay(true)?;
            outer.set_nodelay(true)?;
            return Ok((inner, outer));
        }
        tracing::warn!(%from, "unexpected connection to a TLS loopback socket: closed");
    }
}

/// The PEM certificates in the file `settings.<field>` names; at least one.
fn certificates(field: &'static str, path: &Path) -> Result<Vec<X509>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| file_error(field, path, e))?;
    let certs = X509::stack_from_pem(&pem).map_err(|e| file_error(field, path, e))?;
    if certs.is_empty() {
        return Err(file_error(field, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn file_error(field: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        field,
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// OpenSSL's reason for a failed handshake, in one line.
fn describe(e: &openssl::ssl::Error) -> String {
    match e.ssl_error() {
        Some(stack) => stack
            .errors()
            .iter()
            .filter_map(|e| e.reason())
            .collect::<Vec<_>>()
            .join("; "),
        None => e.to_string(),
    }
}
