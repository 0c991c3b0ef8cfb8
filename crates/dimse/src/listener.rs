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
            config: Arc::new(config),
            sink,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serve until shutdown is triggered, then wait for open associations
    /// (each finishes the instance in flight) up to the grace period.
    pub async fn run(self) {
        let Listener {
            tcp,
            config,
            sink,
            mut shutdown,
        } = self;
        let slots = Arc::new(Semaphore::new(config.max_associations));
        let mut tasks = JoinSet::new();
        let ids = AtomicU64::new(1);
        let mut accept_backoff = Duration::from_millis(10);
        loop {
            while tasks.try_join_next().is_some() {}
            let (socket, peer) = tokio::select! {
                _ = shutdown.wait() => break,
                accepted = tcp.accept() => match accepted {
                    Ok(pair) => { accept_backoff = Duration::from_millis(10); pair }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(accept_backoff).await;
                        accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
            };
            set_nodelay(&socket, peer);
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let handler = Handler {
                        id: ids.fetch_add(1, Ordering::Relaxed),
                        peer,
                        config: config.clone(),
                        sink: sink.clone(),
                        shutdown: shutdown.clone(),
                    };
                    tasks.spawn(async move {
                        handler.run(socket).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    ListenerStats::add(&config.stats.associations_over_limit);
                    tasks.spawn(crate::limit::reject_busy(socket, peer, config.idle_timeout));
                }
            }
        }
        drop(tcp);
        while tasks.try_join_next().is_some() {}
        let open = tasks.len();
        if open > 0 {
            tracing::info!(open, "waiting for open associations to finish");
        }
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
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

/// Without TCP_NODELAY every C-STORE round trip waits 40-90 ms for Nagle and
/// delayed ACK; dicom-ul never sets it.
fn set_nodelay(socket: &TcpStream, peer: SocketAddr) {
    if let Err(e) = socket.set_nodelay(true) {
        tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
}
