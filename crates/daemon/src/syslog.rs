//! Forwarding the audit trail to a syslog collector as RFC 5424 messages
//! (`[audit] syslog`): over TCP with octet-counted framing (RFC 6587), or
//! one UDP datagram each (RFC 5426). The trail is read from the database
//! after a cursor kept there, so events recorded while the collector is
//! down (or the daemon is stopped) are sent later, in order. A message may
//! be sent twice after a crash (between sending and moving the cursor);
//! each carries the event's id for the collector to tell.

use std::time::Duration;

use archive::{Audit, AuditEvent, AuditOutcome};
use dimse::Shutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::config::audit::SyslogTarget;

/// The cursor's name in `audit_cursors`.
const CURSOR: &str = "syslog";
const POLL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(10);
/// Private Enterprise Number 32473 is reserved for documentation and
/// examples (RFC 5612); the SD-ID names triaged's audit parameters.
const SD_ID: &str = "audit@32473";
/// Facility authpriv (10): security and authorisation messages.
const FACILITY: u8 = 10;

/// One event as an RFC 5424 message (without framing).
pub fn rfc5424(e: &AuditEvent, hostname: &str, procid: u32) -> String {
    // Severity: notice for what was allowed, warning for refusals and failures.
    let severity = match e.outcome {
        AuditOutcome::Ok => 5,
        AuditOutcome::Denied | AuditOutcome::Failed => 4,
    };
    let mut sd = format!("[{SD_ID} id=\"{}\"", e.id);
    let mut param = |name: &str, v: Option<&str>| {
        if let Some(v) = v {
            sd += &format!(" {name}=\"{}\"", escape(v));
        }
    };
    param("user", Some(&e.user));
    param("role", Some(e.role.as_str()));
    param("study", e.study_instance_uid.as_deref());
    param("object", e.object.as_deref());
    param("outcome", Some(e.outcome.as_str()));
    param("address", e.address.as_deref());
    sd.push(']');
    let who = if e.user.is_empty() {
        "an unauthenticated client".to_string()
    } else {
        e.user.clone()
    };
    format!(
        "<{}>1 {} {} triaged {} {} {} {} {}",
        FACILITY * 8 + severity,
        e.at,
        hostname,
        procid,
        e.action.as_str(),
        sd,
        who,
        e.action.as_str()
    )
}

/// A PARAM-VALUE: `"`, `\` and `]` are escaped (RFC 5424, 6.3.3).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// This machine's host name, or the RFC 5424 nil value.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| (33..=126).contains(&b)))
        .unwrap_or_else(|| "-".into())
}

enum Link {
    Tcp(Option<TcpStream>),
    Udp(Option<UdpSocket>),
}

impl Link {
    async fn send(&mut self, target: SyslogTarget, msg: &str) -> std::io::Result<()> {
        match (self, target) {
            (Link::Tcp(stream), SyslogTarget::Tcp(addr)) => {
                // A collector never writes on this connection: something
                // to read means it closed (or reset) it. Writing into such
                // a socket can still "succeed" once, losing the message.
                if let Some(s) = stream.as_ref() {
                    match s.try_read(&mut [0u8; 1]) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        _ => *stream = None,
                    }
                }
                if stream.is_none() {
                    let s = TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    *stream = Some(s);
                }
                let framed = format!("{} {msg}", msg.len());
                let s = stream.as_mut().expect("connected above");
                let sent = s.write_all(framed.as_bytes()).await;
                if sent.is_err() {
                    *stream = None;
                }
                sent
            }
            (Link::Udp(socket), SyslogTarget::Udp(addr)) => {
                if socket.is_none() {
                    let bind = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    *socket = Some(UdpSocket::bind(bind).await?);
                }
                let s = socket.as_ref().expect("bound above");
                s.send_to(msg.as_bytes(), addr).await.map(|_| ())
            }
            _ => unreachable!("a link is made for its target's transport"),
        }
    }
}

/// The forwarding task.
pub struct Forwarder {
    pub audit: Audit,
    pub target: SyslogTarget,
    pub hostname: String,
}

impl Forwarder {
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut link = match self.target {
            SyslogTarget::Tcp(_) => Link::Tcp(None),
            SyslogTarget::Udp(_) => Link::Udp(None),
        };
        let procid = std::process::id();
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            match self.forward(&mut link, procid).await {
                Ok(sent) if sent > 0 && failing => {
                    failing = false;
                    tracing::info!(sent, "audit trail reaches the syslog collector again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot forward the audit trail to syslog; it is kept and sent later");
                }
                Err(_) => {}
            }
        }
    }

    /// Send what was recorded since the cursor; returns how many went.
    async fn forward(&self, link: &mut Link, procid: u32) -> Result<usize, String> {
        let mut cursor = self.audit.cursor(CURSOR).await.map_err(|e| e.to_string())?;
        let mut sent = 0;
        loop {
            let events = self
                .audit
                .after(cursor, 200)
                .await
                .map_err(|e| e.to_string())?;
            if events.is_empty() {
                return Ok(sent);
            }
            for e in &events {
                let msg = rfc5424(e, &self.hostname, procid);
                let r = tokio::time::timeout(TIMEOUT, link.send(self.target, &msg)).await;
                let failed = match r {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("no progress within {} s", TIMEOUT.as_secs())),
                };
                if let Some(why) = failed {
                    if let Link::Tcp(s) = link {
                        *s = None;
                    }
                    self.audit
                        .set_cursor(CURSOR, cursor)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Err(why);
                }
                cursor = e.id;
                sent += 1;
            }
            self.audit
                .set_cursor(CURSOR, cursor)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use archive::{AuditAction, AuditRole};

    #[test]
    fn an_event_is_one_rfc5424_line_with_structured_data() {
        let e = AuditEvent {
            id: 7,
            at: "2026-12-03T08:00:00.123Z".into(),
            user: "dr \"who\"".into(),
            role: AuditRole::Radiologist,
            action: AuditAction::StudyView,
            study_instance_uid: Some("1.2.3".into()),
            object: None,
            outcome: AuditOutcome::Ok,
            address: Some("10.0.0.5".into()),
        };
        assert_eq!(
            rfc5424(&e, "node1", 42),
            "<85>1 2026-12-03T08:00:00.123Z node1 triaged 42 study.view \
             [audit@32473 id=\"7\" user=\"dr \\\"who\\\"\" role=\"radiologist\" study=\"1.2.3\" \
             outcome=\"ok\" address=\"10.0.0.5\"] dr \"who\" study.view"
        );
        let denied = AuditEvent {
            user: String::new(),
            role: AuditRole::None,
            outcome: AuditOutcome::Denied,
            ..e
        };
        let line = rfc5424(&denied, "node1", 42);
        assert!(line.starts_with("<84>1 "), "{line}");
        assert!(
            line.ends_with("] an unauthenticated client study.view"),
            "{line}"
        );
    }
}
