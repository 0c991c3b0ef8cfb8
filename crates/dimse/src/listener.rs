//! The TCP listener: accepts connections under a limit, hands each to a
//! handler task, and drains them on shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::handler::Handler;
use crate::policy::LivePolicy;
use crate::shutdown::Shutdown;
use crate::sink::StorageSink;
use crate::tls::TlsAcceptor;

/// Settings of the SCP.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub policy: LivePolicy,
    /// The largest PDU we accept (announced in A-ASSOCIATE-AC).
    pub max_pdu: u32,
    /// An association that sends nothing for this long is aborted.
    pub idle_timeout: Duration,
    /// Associations served at once; more are refused (transient).
    pub max_associations: usize,
    /// How long shutdown waits for associations to end on their own.
    pub shutdown_grace: Duration,
    /// Counters for metrics, shared with whoever exposes them.
    pub stats: Arc<ListenerStats>,
}

/// What the listener has done since start-up.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub associations_accepted: AtomicU64,
    /// Refused by the AE-title policy.
    pub associations_rejected: AtomicU64,
    /// Refused because `max_associations` were open.
    pub associations_over_limit: AtomicU64,
    /// Closed at once, unanswered, because `max_associations` were open and
    /// as many refusals were already under way (a flood).
    pub connections_dropped: AtomicU64,
}

impl ListenerStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct Listener<S> {
    tcp: TcpListener,
    /// The DICOM-over-TLS port, when configured.
    tls: Option<(TcpListener, TlsAcceptor)>,
    config: Arc<ListenerConfig>,
    sink: Arc<S>,
    shutdown: Shutdown,
}

impl<S: StorageSink> Listener<S> {
    pub async fn bind(
        addr: SocketAddr,
        config: ListenerConfig,
        sink: Arc<S>,
        shutdown: Shutdown,
    ) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        Ok(Listener {
            tcp,
            tls: None,
            config: Arc::new(config),
            sink,
            shutdown,
        })
    }

    /// Also serve DICOM over TLS on `addr`: same policy, sink, limits and
    /// shutdown as the plain port (one pool of association slots).
    pub async fn with_tls(
        mut self,
        addr: SocketAddr,
        acceptor: TlsAcceptor,
    ) -> std::io::Result<Self> {
        self.tls = Some((TcpListener::bind(addr).await?, acceptor));
        Ok(self)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The TLS port's address, when there is one.
    pub fn tls_local_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.tls.as_ref().map(|(l, _)| l.local_addr())
    }

    /// Serve until shutdown is triggered, then wait for open associations
    /// (each finishes the instance in flight) up to the grace period.
    pub async fn run(self) {
        let Listener {
            tcp,
            tls,
            config,
            sink,
            mut shutdown,
        } = self;
        let slots = Arc::new(Semaphore::new(config.max_associations));
        // Refusals (reading the request, answering A-ASSOCIATE-RJ) are tasks
        // too: at most as many as associations (16 at least); past that a
        // connection is closed unanswered, so a flood costs no memory.
        let refusals = Arc::new(Semaphore::new(config.max_associations.max(16)));
        let mut tasks = JoinSet::new();
        let ids = AtomicU64::new(1);
        let mut accept_backoff = Duration::from_millis(10);
        loop {
            while let Some(done) = tasks.try_join_next() {
                log_panic(done);
            }
            let (accepted, secure) = tokio::select! {
                _ = shutdown.wait() => break,
                accepted = tcp.accept() => (accepted, false),
                accepted = accept_on(tls.as_ref().map(|(l, _)| l)) => (accepted, true),
            };
            let (socket, peer) = match accepted {
                Ok(pair) => {
                    accept_backoff = Duration::from_millis(10);
                    pair
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(accept_backoff).await;
                    accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            set_nodelay(&socket, peer);
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let handler = Handler {
                        id: ids.fetch_add(1, Ordering::Relaxed),
                        peer,
                        secure,
                        config: config.clone(),
                        sink: sink.clone(),
                        shutdown: shutdown.clone(),
                    };
                    let acceptor = tls.as_ref().filter(|_| secure).map(|(_, a)| a.clone());
                    tasks.spawn(async move {
                        match acceptor {
                            None => handler.run(socket).await,
                            Some(acceptor) => handler.run_tls(socket, &acceptor).await,
                        }
                        drop(permit);
                    });
                }
                Err(_) => match refusals.clone().try_acquire_owned() {
                    Ok(permit) => {
                        ListenerStats::add(&config.stats.associations_over_limit);
                        let timeout = config.idle_timeout;
                        tasks.spawn(async move {
                            crate::limit::reject_busy(socket, peer, timeout).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        // Debug, not warn: a flood must not flood the log.
                        ListenerStats::add(&config.stats.connections_dropped);
                        tracing::debug!(%peer, "over the association and refusal limits; connection closed");
                        drop(socket);
                    }
                },
            }
        }
        drop(tcp);
        while let Some(done) = tasks.try_join_next() {
            log_panic(done);
        }
        let open = tasks.len();
        if open > 0 {
            tracing::info!(open, "waiting for open associations to finish");
        }
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while let Some(done) = tasks.join_next().await {
                log_panic(done);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = tasks.len(),
                "shutdown grace period over; closing associations"
            );
            tasks.shutdown().await;
        }
    }
}

/// The next connection on `listener`; never, when there is none.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Without TCP_NODELAY every C-STORE round trip waits 40-90 ms for Nagle and
/// delayed ACK; dicom-ul never sets it.
fn set_nodelay(socket: &TcpStream, peer: SocketAddr) {
    if let Err(e) = socket.set_nodelay(true) {
        tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
}

/// A connection's task that panicked: said once, with the message; the
/// listener and the other associations go on.
fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "an association's task panicked; its connection is closed, the others go on");
        }
    }
}
