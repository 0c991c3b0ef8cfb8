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

/// An error and its causes on one line, each said once. The libraries'
/// errors name their cause in their own message (a log line shows only
/// that message) and also return it as their source, so anyhow's `{:#}`
/// would print it twice ("cannot lock: No such file (os error 2): No such
/// file (os error 2)"): a cause whose text is already there is left out.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// As the libraries' errors are: the cause in the message and as source.
    #[derive(Debug)]
    struct Lock(std::io::Error);

    impl std::fmt::Display for Lock {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot lock the storage folder: {}", self.0)
        }
    }

    impl std::error::Error for Lock {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder");
        let e = anyhow::Error::new(Lock(io)).context("cannot open the archive in /x");
        assert_eq!(
            one_line(&e),
            "cannot open the archive in /x: cannot lock the storage folder: no such folder"
        );
    }

    #[test]
    fn a_cause_not_in_the_message_is_added() {
        let e = anyhow::anyhow!("timed out").context("sending to pacs");
        assert_eq!(one_line(&e), "sending to pacs: timed out");
    }
}
