//! Refusing an association when the daemon is already at its limit.
//!
//! A peer that finds no free slot gets a transient A-ASSOCIATE-RJ ("local
//! limit exceeded"), which routers treat as "try again later", rather than a
//! connection that hangs until the peer's own timeout.

use std::net::SocketAddr;
use std::time::Duration;

use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, Pdu,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A-ASSOCIATE-RQ bodies are small; anything bigger is not worth reading.
const MAX_RQ_LEN: u64 = 1 << 20;

pub(crate) async fn reject_busy(mut socket: TcpStream, peer: SocketAddr, timeout: Duration) {
    let result = tokio::time::timeout(timeout, async {
        let mut header = [0u8; 6];
        socket.read_exact(&mut header).await?;
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as u64;
        if header[0] != 0x01 || len > MAX_RQ_LEN {
            return Err(std::io::Error::other("not an A-ASSOCIATE-RQ"));
        }
        tokio::io::copy(&mut (&mut socket).take(len), &mut tokio::io::sink()).await?;
        let rj = Pdu::AssociationRJ(AssociationRJ {
            result: AssociationRJResult::Transient,
            source: AssociationRJSource::ServiceProviderPresentation(
                AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
            ),
        });
        let mut out = Vec::with_capacity(16);
        dicom_ul::write_pdu(&mut out, &rj).map_err(std::io::Error::other)?;
        socket.write_all(&out).await?;
        socket.shutdown().await
    })
    .await;
    match result {
        Ok(Ok(())) => {
            tracing::warn!(%peer, "association rejected: too many concurrent associations")
        }
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "over the association limit; connection closed")
        }
        Err(_) => tracing::warn!(%peer, "over the association limit; peer sent no request in time"),
    }
}
