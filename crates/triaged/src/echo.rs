//! `triaged echo <destination>`: try a configured destination without
//! sending a result (C-ECHO for DICOM; see `daemon::deliver::probe`).

use std::process::ExitCode;

use daemon::config::Config;

pub async fn run(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let d = config.named_destination(name)?;
    match daemon::deliver::probe(config, d).await {
        Ok(said) => {
            println!("{name}: {said}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
