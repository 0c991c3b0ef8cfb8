//! `triaged echo <destination>`: C-ECHO a configured peer.

use dimse::scu;
use std::process::ExitCode;

use daemon::config::Config;

pub async fn run(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let d = config.named_destination(name)?;
    match scu::echo(&config.scu_settings(), &d.peer()).await {
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
