//! `[audit]`: forwarding the audit trail to a syslog collector.

use std::net::SocketAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Forward every audit event as an RFC 5424 syslog message to
    /// `tcp://host:port` (octet-counted framing, RFC 6587) or
    /// `udp://host:port`; absent: the trail stays in the database only.
    pub syslog: Option<String>,
    /// The messages' HOSTNAME (default: this machine's host name).
    pub syslog_hostname: Option<String>,
}

/// Where syslog messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTarget {
    Tcp(SocketAddr),
    Udp(SocketAddr),
}

impl AuditConfig {
    /// The parsed `syslog` target (`None` when not set).
    pub fn target(&self) -> Result<Option<SyslogTarget>, String> {
        let Some(url) = self.syslog.as_deref() else {
            return Ok(None);
        };
        let bad = |why: &str| format!("audit.syslog: '{url}' {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("is not tcp://host:port or udp://host:port"))?;
        let addr = resolve(rest).ok_or_else(|| bad("does not name a reachable host:port"))?;
        match scheme {
            "tcp" => Ok(Some(SyslogTarget::Tcp(addr))),
            "udp" => Ok(Some(SyslogTarget::Udp(addr))),
            _ => Err(bad("must start with tcp:// or udp://")),
        }
    }

    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = self.target() {
            p.push(e);
        }
        if let Some(h) = &self.syslog_hostname {
            if h.is_empty() || h.len() > 255 || !h.bytes().all(|b| (33..=126).contains(&b)) {
                p.push(format!(
                    "audit.syslog_hostname: '{h}' must be 1..=255 printable ASCII characters without spaces"
                ));
            }
        }
        p
    }
}

fn resolve(host_port: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    host_port.to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_tcp_or_udp_and_wrong_ones_are_named() {
        let c = |s: &str| AuditConfig {
            syslog: Some(s.into()),
            syslog_hostname: None,
        };
        assert_eq!(
            c("tcp://127.0.0.1:6514").target(),
            Ok(Some(SyslogTarget::Tcp("127.0.0.1:6514".parse().unwrap())))
        );
        assert_eq!(
            c("udp://127.0.0.1:514").target(),
            Ok(Some(SyslogTarget::Udp("127.0.0.1:514".parse().unwrap())))
        );
        for wrong in ["127.0.0.1:514", "http://127.0.0.1:514", "tcp://nowhere"] {
            let p = c(wrong).problems();
            assert!(p.len() == 1 && p[0].starts_with("audit.syslog:"), "{p:?}");
        }
        assert_eq!(AuditConfig::default().target(), Ok(None));
    }
}
