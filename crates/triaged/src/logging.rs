//! Log output. Logs carry UIDs, AE titles and addresses, never patient data.

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use daemon::config::LogConfig;

pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v).context("RUST_LOG")?,
        _ => EnvFilter::try_new(&config.level).context("log.level")?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}
