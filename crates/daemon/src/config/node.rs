//! `[node]`: this daemon's name among several on one database.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Unique among the nodes sharing a database (default: the host name);
    /// it names this node's lock and incoming folder in a shared storage
    /// folder, its claims, and its metrics.
    pub name: String,
    /// A node whose heartbeat is older than this has its claimed jobs and
    /// deliveries taken over by the others; it beats every third of it.
    pub lease_secs: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: archive::host_name(),
            lease_secs: 30,
        }
    }
}

impl NodeConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !archive::is_safe_uid(&self.name) {
            p.push(format!(
                "node.name: '{}' must be 1 to 64 letters, digits, '.', '-' or '_', not starting with '.'",
                self.name
            ));
        }
        if !(3..=3600).contains(&self.lease_secs) {
            p.push(format!(
                "node.lease_secs: {} is outside 3..=3600",
                self.lease_secs
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_file_names_are_refused() {
        let ok = NodeConfig::default();
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());
        for bad in ["", "../x", "a/b", ".hidden"] {
            let c = NodeConfig {
                name: bad.into(),
                ..NodeConfig::default()
            };
            assert!(c.problems()[0].starts_with("node.name:"), "{bad}");
        }
        let c = NodeConfig {
            lease_secs: 1,
            ..NodeConfig::default()
        };
        assert!(c.problems()[0].starts_with("node.lease_secs: 1"));
    }
}
