//! The nodes that share one database, and the leases on their work.
//!
//! Each node records a heartbeat in `nodes` every third of the lease. A
//! job a worker claims, and an outbox row a delivery claims, name the node
//! that holds them (`node`). A node silent for longer than the lease is
//! dead to the others: any live node's next heartbeat puts the dead
//! node's claims back (jobs `ready`, deliveries `pending`) for whoever
//! claims next. The dead node, should it wake, finds its claims gone:
//! every step that records a result checks that this node still holds
//! the job or row, so nothing is recorded twice.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::FromRow;

use crate::db::{Pool, NOW};
use crate::states::{DeliveryState, JobState};
use crate::ArchiveError;

/// This node and its lease.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub node: Arc<str>,
    pub duration: Duration,
}

impl Lease {
    /// `SELECT name` of the nodes whose heartbeat is older than the lease.
    pub fn dead_nodes(&self) -> String {
        format!(
            "SELECT name FROM nodes WHERE seen_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{:.3} seconds')",
            self.duration.as_secs_f64()
        )
    }

    /// The condition on a claimed row (`node` column) that it may be
    /// taken back: held by a dead node, by no node (claimed before
    /// triaged recorded holders), or, when `mine`, by this node (at
    /// start-up: what a crash of this node left).
    pub fn releasable(&self, mine: bool) -> String {
        let mut c = format!("(node IS NULL OR node IN ({})", self.dead_nodes());
        if mine {
            c += " OR node = $1";
        }
        c + ")"
    }
}

/// One node as the database knows it.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct NodeRow {
    pub name: String,
    pub version: String,
    pub started_at: String,
    pub seen_at: String,
}

/// Record that this node is alive (`starting`: it has just started).
pub(crate) async fn beat(pool: &Pool, lease: &Lease, starting: bool) -> Result<(), ArchiveError> {
    let started = if starting {
        format!(", started_at = {NOW}")
    } else {
        String::new()
    };
    sqlx::query(&format!(
        "INSERT INTO nodes (name, version, started_at, seen_at) VALUES ($1, $2, {NOW}, {NOW})
         ON CONFLICT (name) DO UPDATE SET seen_at = {NOW}, version = excluded.version{started}"
    ))
    .bind(&*lease.node)
    .bind(env!("CARGO_PKG_VERSION"))
    .execute(pool)
    .await
    .map_err(ArchiveError::db("recording this node's heartbeat"))?;
    Ok(())
}

/// Put back the jobs of dead nodes (and of none) for another worker;
/// `mine`: this node's too (at start-up). Returns how many.
pub(crate) async fn release_jobs(
    pool: &Pool,
    lease: &Lease,
    mine: bool,
) -> Result<u64, ArchiveError> {
    let q = format!(
        "UPDATE jobs SET state = {}, node = NULL, updated_at = {NOW} WHERE {} AND {}",
        JobState::Ready.sql(),
        JobState::moving(&JobState::RUNNING, JobState::Ready),
        lease.releasable(mine)
    );
    let q = sqlx::query(&q);
    Ok(if mine { q.bind(&*lease.node) } else { q }
        .execute(pool)
        .await
        .map_err(ArchiveError::db("taking back jobs"))?
        .rows_affected())
}

/// Put back the deliveries of dead nodes (and of none); `mine`: this
/// node's too (at start-up). Returns how many.
pub(crate) async fn release_deliveries(
    pool: &Pool,
    lease: &Lease,
    mine: bool,
) -> Result<u64, ArchiveError> {
    let q = format!(
        "UPDATE outbox SET state = {}, node = NULL, updated_at = {NOW} WHERE {} AND {}",
        DeliveryState::Pending.sql(),
        DeliveryState::moving(&[DeliveryState::Sending], DeliveryState::Pending),
        lease.releasable(mine)
    );
    let q = sqlx::query(&q);
    Ok(if mine { q.bind(&*lease.node) } else { q }
        .execute(pool)
        .await
        .map_err(ArchiveError::db("taking back deliveries"))?
        .rows_affected())
}

/// Beat every third of the lease and take back dead nodes' claims, until
/// aborted (the archive's close). A failed beat is logged and retried:
/// this node's claims lapse if the database stays out of reach.
pub(crate) fn spawn_heartbeat(pool: Pool, lease: Lease) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = lease.duration / 3;
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = beat(&pool, &lease, false).await {
                tracing::warn!(node = %lease.node, error = %e, "heartbeat failed");
                continue;
            }
            let released = async {
                Ok::<_, ArchiveError>((
                    release_jobs(&pool, &lease, false).await?,
                    release_deliveries(&pool, &lease, false).await?,
                ))
            };
            match released.await {
                Ok((0, 0)) => {}
                Ok((jobs, deliveries)) => tracing::warn!(
                    node = %lease.node, jobs, deliveries,
                    "took back the claims of a node that stopped beating"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot take back stopped nodes' claims"),
            }
        }
    })
}

/// Every node that has beaten, most recent first.
pub(crate) async fn list(pool: &Pool) -> Result<Vec<NodeRow>, ArchiveError> {
    sqlx::query_as("SELECT name, version, started_at, seen_at FROM nodes ORDER BY seen_at DESC")
        .fetch_all(pool)
        .await
        .map_err(ArchiveError::db("listing nodes"))
}
