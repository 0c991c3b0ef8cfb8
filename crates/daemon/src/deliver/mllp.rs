//! HL7 v2 over MLLP: one connection per message, the ACK read before the
//! connection closes.
//!
//! AA (or CA) is delivered; AE, AR (CE, CR) is a rejection the outbox
//! keeps as dead letter with the ACK's text; a refused or dropped
//! connection, a timeout or a connection closed before the whole ACK came
//! are retried. The message control ID is the same on every attempt, so a
//! receiver that keeps the IDs it accepted (as interface engines do) files
//! a message sent again after a crash once.

use std::time::Duration;

use report::hl7;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Outcome;

/// The largest ACK read; an answer growing past it is not an ACK.
const MAX_ACK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("{address} closed the connection after {received} bytes, before a whole ACK")]
    Closed { address: String, received: usize },
    #[error("{address} did not answer within {secs} s")]
    Timeout { address: String, secs: u64 },
    #[error("{address} sent more than {MAX_ACK} bytes without ending its answer")]
    TooLong { address: String },
}

/// Send one framed message and return the answer's text (unframed).
pub async fn exchange(
    host: &str,
    port: u16,
    message: &str,
    timeout: Duration,
) -> Result<String, MllpError> {
    let address = format!("{host}:{port}");
    let run = async {
        let mut stream =
            TcpStream::connect((host, port))
                .await
                .map_err(|source| MllpError::Connect {
                    address: address.clone(),
                    source,
                })?;
        let io = |source| MllpError::Io {
            address: address.clone(),
            source,
        };
        stream.set_nodelay(true).map_err(io)?;
        stream.write_all(&hl7::frame(message)).await.map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Err(MllpError::Closed {
                    address: address.clone(),
                    received: answer.len(),
                });
            }
            answer.extend_from_slice(&buf[..n]);
            if let Some(end) = answer
                .windows(hl7::END_BLOCK.len())
                .position(|w| w == hl7::END_BLOCK)
            {
                let start = answer
                    .iter()
                    .position(|&b| b == hl7::START_BLOCK)
                    .map_or(0, |i| i + 1);
                let _ = stream.shutdown().await;
                return Ok(String::from_utf8_lossy(&answer[start.min(end)..end]).into_owned());
            }
            if answer.len() > MAX_ACK {
                return Err(MllpError::TooLong {
                    address: address.clone(),
                });
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(MllpError::Timeout {
            address,
            secs: timeout.as_secs(),
        }),
    }
}

/// Send `message` (control ID `control_id`) and judge the ACK.
pub async fn deliver(
    host: &str,
    port: u16,
    message: &str,
    control_id: &str,
    timeout: Duration,
) -> Outcome {
    let failed = |error: String, permanent| Outcome::Failed {
        status: None,
        error,
        permanent,
    };
    let answer = match exchange(host, port, message, timeout).await {
        Ok(a) => a,
        Err(e) => return failed(e.to_string(), false),
    };
    match hl7::parse_ack(&answer) {
        Err(e) => failed(
            format!(
                "{host}:{port} answered with something that is not an HL7 ACK ({e}): {}",
                answer.chars().take(200).collect::<String>()
            ),
            true,
        ),
        Ok(ack) if ack.control_id != control_id => failed(
            format!(
                "{host}:{port} acknowledged message '{}', not '{control_id}'",
                ack.control_id
            ),
            true,
        ),
        Ok(ack) if ack.accepted() => Outcome::Delivered {
            status: dimse::Status::SUCCESS,
            note: Some(format!("ACK {}", ack.code)),
        },
        Ok(ack) => failed(
            format!(
                "{host}:{port} answered {}: {}",
                ack.code,
                if ack.text.is_empty() {
                    "(no text)"
                } else {
                    &ack.text
                }
            ),
            true,
        ),
    }
}
