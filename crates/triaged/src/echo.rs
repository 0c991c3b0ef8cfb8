//! `triaged echo <destination>`: C-ECHO a configured peer.

use std::process::ExitCode;
use std::time::Duration;

use dimse::scu::{self, Peer, ScuSettings};

use daemon::config::Config;

pub async fn run(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let Some(d) = config.destination(name) else {
        let known: Vec<_> = config
            .destinations
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        anyhow::bail!(
            "no destination named '{name}' in [[destinations]] (configured: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    let settings = ScuSettings {
        calling_ae_title: config.dicom.ae_title.clone(),
        timeout: Duration::from_secs(config.dicom.scu_timeout_secs),
        max_pdu: config.dicom.max_pdu,
    };
    let peer = Peer {
        ae_title: d.ae_title.clone(),
        host: d.host.clone(),
        port: d.port,
    };
    match scu::echo(&settings, &peer).await {
        Ok(rtt) => {
            println!(
                "{name}: {}@{}:{} answered C-ECHO in {} ms",
                d.ae_title,
                d.host,
                d.port,
                rtt.as_millis()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{name}: C-ECHO failed: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
