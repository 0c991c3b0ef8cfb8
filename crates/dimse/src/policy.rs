//! Who may open an association with triaged.
//!
//! The called AE title must be ours (the main one or one of the others a
//! daemon answers to), and the calling AE title must belong to a configured
//! source connecting from one of that source's hosts, and be one of the
//! sources that AE title accepts. With no sources configured, any calling
//! AE is accepted from loopback only: the safe default for a daemon started
//! without a configuration file.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, UserIdentity};

/// An allowed peer address: one IP address or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPattern {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not an IP address or CIDR range (e.g. 10.0.0.5 or 10.0.0.0/24)")]
pub struct HostPatternError(pub String);

impl FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || HostPatternError(s.to_string());
        // Canonical forms only: no spaces, a prefix of plain digits
        // without a sign or leading zeros.
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                let plain = !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p == "0" || !p.starts_with('0'));
                if !plain {
                    return Err(err());
                }
                (a, Some(p.parse::<u8>().map_err(|_| err())?))
            }
            None => (s, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(err());
        }
        // An IPv4-mapped IPv6 range is the IPv4 range it maps (its last 32
        // bits), as peers' mapped addresses are compared as IPv4.
        Ok(match network.to_canonical() {
            v4 @ IpAddr::V4(_) if network.is_ipv6() && prefix >= 96 => HostPattern {
                network: v4,
                prefix: prefix - 96,
            },
            _ => HostPattern { network, prefix },
        })
    }
}

impl HostPattern {
    pub fn matches(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        match (self.network, peer) {
            (IpAddr::V4(n), IpAddr::V4(p)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(p) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(p)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(p) & mask
            }
            _ => false,
        }
    }
}

/// As an admin writes it: a single address without its full-length
/// prefix, a range with its prefix (parses back to the same pattern).
impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// A peer allowed to send to us.
#[derive(Debug, Clone)]
pub struct SourceRule {
    /// The admin's name for it, used in logs and in the archive.
    pub name: String,
    pub ae_title: String,
    /// Empty: any host.
    pub hosts: Vec<HostPattern>,
}

/// Another AE title the daemon answers to, and who may call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalledAe {
    pub ae_title: String,
    /// The names of the sources that may call it; empty: every source.
    pub sources: Vec<String>,
}

/// The association acceptance policy.
#[derive(Debug, Clone)]
pub struct AssociationPolicy {
    /// The main AE title: every source may call it.
    pub ae_title: String,
    pub sources: Vec<SourceRule>,
    /// Further AE titles, each for some of the sources.
    pub other_ae_titles: Vec<CalledAe>,
}

/// Where a running listener finds the policy in force (an admin may add a
/// source from the console while it runs).
pub trait PolicySource: std::fmt::Debug + Send + Sync + 'static {
    fn current(&self) -> Arc<AssociationPolicy>;
}

/// A policy that never changes.
#[derive(Debug)]
struct Fixed(Arc<AssociationPolicy>);

impl PolicySource for Fixed {
    fn current(&self) -> Arc<AssociationPolicy> {
        self.0.clone()
    }
}

/// The policy in force: each association reads it once, when it is
/// requested, so a change never affects one already open.
#[derive(Debug, Clone)]
pub struct LivePolicy(Arc<dyn PolicySource>);

impl LivePolicy {
    /// A fixed policy.
    pub fn new(policy: AssociationPolicy) -> LivePolicy {
        LivePolicy(Arc::new(Fixed(Arc::new(policy))))
    }

    /// A policy read from `source` for each association.
    pub fn from_source(source: impl PolicySource) -> LivePolicy {
        LivePolicy(Arc::new(source))
    }

    pub fn current(&self) -> Arc<AssociationPolicy> {
        self.0.current()
    }
}

/// Why an association request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    CalledAeNotRecognized,
    CallingAeNotRecognized,
    HostNotAllowed,
    /// A known source calling an AE title that does not accept it.
    SourceNotForCalledAe,
}

impl Refusal {
    fn reason(self) -> AssociationRJServiceUserReason {
        match self {
            Refusal::CalledAeNotRecognized => {
                AssociationRJServiceUserReason::CalledAETitleNotRecognized
            }
            // DICOM has no "host not allowed" reason: the calling AE is not
            // recognized *from that address*.
            Refusal::CallingAeNotRecognized
            | Refusal::HostNotAllowed
            | Refusal::SourceNotForCalledAe => {
                AssociationRJServiceUserReason::CallingAETitleNotRecognized
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::CalledAeNotRecognized => "called AE title is not ours",
            Refusal::CallingAeNotRecognized => "calling AE title is not a configured source",
            Refusal::HostNotAllowed => "calling AE title is not allowed from this address",
            Refusal::SourceNotForCalledAe => {
                "calling AE title is not a source of this called AE title"
            }
        })
    }
}

fn ae_eq(a: &str, b: &str) -> bool {
    a.trim() == b.trim()
}

impl AssociationPolicy {
    /// Decide on an association request. Returns the source's name.
    pub fn check(&self, peer: IpAddr, calling: &str, called: &str) -> Result<String, Refusal> {
        // The sources the called AE title accepts (empty: all).
        let accepts: &[String] = if ae_eq(called, &self.ae_title) {
            &[]
        } else {
            match self
                .other_ae_titles
                .iter()
                .find(|c| ae_eq(&c.ae_title, called))
            {
                Some(c) => &c.sources,
                None => return Err(Refusal::CalledAeNotRecognized),
            }
        };
        if self.sources.is_empty() {
            return if peer.to_canonical().is_loopback() {
                Ok(format!("loopback:{}", calling.trim()))
            } else {
                Err(Refusal::HostNotAllowed)
            };
        }
        let mut refusal = Refusal::CallingAeNotRecognized;
        for source in self.sources.iter().filter(|s| ae_eq(&s.ae_title, calling)) {
            if !(source.hosts.is_empty() || source.hosts.iter().any(|h| h.matches(peer))) {
                if refusal == Refusal::CallingAeNotRecognized {
                    refusal = Refusal::HostNotAllowed;
                }
                continue;
            }
            if accepts.is_empty() || accepts.contains(&source.name) {
                return Ok(source.name.clone());
            }
            refusal = Refusal::SourceNotForCalledAe;
        }
        Err(refusal)
    }
}

/// The policy bound to one connection's peer address, as dicom-ul wants it.
///
/// dicom-ul asks its access control only for AE titles; the peer address is
/// known before the request is read, so it is captured here. The verdict is
/// recorded so the handler can log the exact refusal and the source name.
pub(crate) struct PeerAccess {
    pub policy: Arc<AssociationPolicy>,
    pub peer: IpAddr,
    pub verdict: Arc<std::sync::Mutex<Option<Verdict>>>,
}

/// The access decision on one association request.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub calling_ae: String,
    pub called_ae: String,
    /// The source's name, or why it was refused.
    pub result: Result<String, Refusal>,
}

impl AccessControl for PeerAccess {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let result = self
            .policy
            .check(self.peer, calling_ae_title, called_ae_title);
        let answer = result.as_ref().map(|_| ()).map_err(|r| r.reason());
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(Verdict {
            calling_ae: calling_ae_title.trim().to_string(),
            called_ae: called_ae_title.trim().to_string(),
            result,
        });
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_patterns() {
        let p: HostPattern = "10.1.0.0/16".parse().unwrap();
        assert!(p.matches(ip("10.1.200.3")));
        assert!(!p.matches(ip("10.2.0.1")));
        assert!(p.matches(ip("::ffff:10.1.0.9")));
        let single: HostPattern = "127.0.0.1".parse().unwrap();
        assert!(single.matches(ip("127.0.0.1")) && !single.matches(ip("127.0.0.2")));
        let any: HostPattern = "0.0.0.0/0".parse().unwrap();
        assert!(any.matches(ip("192.0.2.1")));
        let v6: HostPattern = "fd00::/8".parse().unwrap();
        assert!(v6.matches(ip("fd12::1")) && !v6.matches(ip("fe80::1")));
        assert!("10.0.0.0/33".parse::<HostPattern>().is_err());
        assert!("pacs.local".parse::<HostPattern>().is_err());
        // Canonical forms only (the API's schema says the same).
        for bad in [
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "10.0.0.0/",
            " 10.0.0.1",
            "10.0.0.1 ",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pattern_prints_as_written_and_parses_back() {
        for written in ["127.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "fd00::/8", "::1"] {
            let p: HostPattern = written.parse().unwrap();
            assert_eq!(p.to_string(), written);
            assert_eq!(p.to_string().parse::<HostPattern>().unwrap(), p);
        }
        // A mapped IPv4 address or range is the IPv4 one.
        let mapped: HostPattern = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.5");
        let range: HostPattern = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(range.to_string(), "10.0.0.0/8");
        assert!(range.matches(ip("10.200.0.1")) && !range.matches(ip("11.0.0.1")));
    }

    #[test]
    fn default_policy_is_loopback_only() {
        let p = AssociationPolicy {
            ae_title: "TRIAGED".into(),
            sources: vec![],
            other_ae_titles: vec![],
        };
        assert!(p.check(ip("127.0.0.1"), "ANY", "TRIAGED").is_ok());
        assert!(p.check(ip("::1"), "ANY", "TRIAGED ").is_ok());
        assert_eq!(
            p.check(ip("10.0.0.1"), "ANY", "TRIAGED"),
            Err(Refusal::HostNotAllowed)
        );
        assert_eq!(
            p.check(ip("127.0.0.1"), "ANY", "OTHER"),
            Err(Refusal::CalledAeNotRecognized)
        );
    }

    #[test]
    fn configured_sources() {
        let p = AssociationPolicy {
            ae_title: "TRIAGED".into(),
            sources: vec![
                SourceRule {
                    name: "router".into(),
                    ae_title: "ROUTER".into(),
                    hosts: vec!["10.0.0.5".parse().unwrap()],
                },
                SourceRule {
                    name: "ct".into(),
                    ae_title: "CT1".into(),
                    hosts: vec![],
                },
            ],
            other_ae_titles: vec![],
        };
        assert_eq!(
            p.check(ip("10.0.0.5"), "ROUTER", "TRIAGED").unwrap(),
            "router"
        );
        assert_eq!(
            p.check(ip("10.0.0.6"), "ROUTER", "TRIAGED"),
            Err(Refusal::HostNotAllowed)
        );
        assert_eq!(p.check(ip("192.0.2.9"), "CT1", "TRIAGED").unwrap(), "ct");
        assert_eq!(
            p.check(ip("127.0.0.1"), "STRANGER", "TRIAGED"),
            Err(Refusal::CallingAeNotRecognized)
        );
    }

    #[test]
    fn other_ae_titles_take_their_own_sources() {
        let source = |name: &str, ae: &str| SourceRule {
            name: name.into(),
            ae_title: ae.into(),
            hosts: vec![],
        };
        let p = AssociationPolicy {
            ae_title: "TRIAGED".into(),
            sources: vec![source("ct-router", "CTROUTER"), source("cr", "CR1")],
            other_ae_titles: vec![
                CalledAe {
                    ae_title: "TRIAGE_CT".into(),
                    sources: vec!["ct-router".into()],
                },
                CalledAe {
                    ae_title: "TRIAGE_ANY".into(),
                    sources: vec![],
                },
            ],
        };
        let at = ip("10.0.0.9");
        assert_eq!(p.check(at, "CTROUTER", "TRIAGE_CT").unwrap(), "ct-router");
        assert_eq!(
            p.check(at, "CR1", "TRIAGE_CT"),
            Err(Refusal::SourceNotForCalledAe)
        );
        assert_eq!(p.check(at, "CR1", "TRIAGE_ANY").unwrap(), "cr");
        assert_eq!(p.check(at, "CR1", "TRIAGED").unwrap(), "cr");
        assert_eq!(
            p.check(at, "CR1", "TRIAGE_MR"),
            Err(Refusal::CalledAeNotRecognized)
        );
        assert_eq!(
            p.check(at, "NOBODY", "TRIAGE_CT"),
            Err(Refusal::CallingAeNotRecognized)
        );
    }
}
