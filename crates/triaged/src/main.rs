//! `triaged`: the daemon and its admin CLI. Wiring only; the work is in the
//! library crates.

#![forbid(unsafe_code)]

mod analyze;
mod audit_cmd;
mod conformance;
mod demo;
mod echo;
mod export_cmd;
mod logging;
mod models;
mod outbox_cmd;
mod retention_cmd;
mod studies;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "triaged", version, about = "DICOM-native AI triage daemon")]
struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults are used.
    #[arg(long, short, global = true, env = "TRIAGED_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: DICOM listener and archive.
    Serve,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Send a C-ECHO to a configured destination; the exit code says
    /// whether it answered.
    Echo {
        /// The destination's `name` in the configuration.
        destination: String,
    },
    /// Studies in the archive.
    Studies {
        #[command(subcommand)]
        command: StudiesCommand,
    },
    /// Run a model on DICOM files now; write or send the structured report
    /// and heatmap captures.
    Analyze(analyze::AnalyzeArgs),
    /// Train the bundled demonstration model on phantom radiographs.
    Train(lab::train::TrainArgs),
    /// Evaluate a model on labelled images (DICOM or PNG and a CSV):
    /// AUROC with 95 % intervals, operating point, calibration, subgroups.
    Evaluate(lab::evaluation::EvaluateArgs),
    /// Send phantom chest studies to triaged by C-STORE (starting a daemon
    /// when none answers).
    Demo(demo::DemoArgs),
    /// Write labelled phantom chest radiographs (DICOM or PNG + labels.csv).
    Phantom(lab::phantom_set::PhantomArgs),
    /// C-STORE DICOM files to a configured destination now (a Comprehensive
    /// 3D SR falls back to Comprehensive SR if the destination needs it).
    Send {
        /// The destination's `name` in the configuration.
        #[arg(long)]
        to: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The audit trail: who looked at and changed what.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Deleting received instances of settled studies ([retention]).
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Copy a study's instances and reports to a folder; with
    /// --deidentify, by DICOM PS3.15's Basic Application Level
    /// Confidentiality Profile. Exit status 2: some files were refused
    /// (listed), the others written.
    Export(export_cmd::ExportArgs),
    /// Results waiting for delivery, and their retries.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Make an access token for the worklist and console: prints the token
    /// (give it to the user) and the [[http.users]] entry with its SHA-256.
    Token(token::TokenArgs),
    /// Print the DICOM conformance statement's tables (SOP classes and
    /// transfer syntaxes), from the code's own lists.
    Conformance,
    /// Models in the models folder (`[models] dir`).
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Every outbox row: state, attempts, next attempt, last error.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Queue files for delivery by the running daemon (with retries).
    Add {
        /// Destination names (repeat or comma-separate).
        #[arg(long, required = true, value_delimiter = ',')]
        to: Vec<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Retry a pending or dead row now, with a fresh attempt count.
    Retry { id: i64 },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print the audit trail as JSON lines, oldest first.
    Export {
        /// From this time (UTC, ISO 8601: 2026-12-01 or 2026-12-01T08:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Before this time.
        #[arg(long)]
        until: Option<String>,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Apply [retention] now (age, watermark, old results); needs the
    /// daemon stopped. With --dry-run, beside a running daemon, only show
    /// what would go.
    Run {
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// List the models, every version, with its state (active, shadow,
    /// disabled) and what its manifest says.
    List,
    /// Verify every model: manifest, weights checksum, tensors, a test
    /// pass; and that no two versions of a model are active.
    Check,
    /// Make a version the one whose findings are reported (the version
    /// that was active is disabled). The running daemon applies it from
    /// the next study.
    Activate { name: String, version: String },
    /// Run a version on live studies for evaluation only: its findings are
    /// recorded, never flagged, reported or shown on the worklist.
    Shadow { name: String, version: String },
    /// Stop a version reading studies.
    Disable { name: String, version: String },
    /// Compare a model's versions on the studies they read: agreement
    /// with the active version, and with radiologists' verdicts.
    Compare {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print a summary.
    Check,
}

#[derive(Subcommand)]
enum StudiesCommand {
    /// List received studies, most recent first.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Keep a study's received instances whatever [retention] says (for
    /// a case under review, a complaint, a research request).
    Hold {
        study_instance_uid: String,
        /// Why (kept with the hold).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Let [retention] apply to a held study again.
    Release { study_instance_uid: String },
}

/// Where the configuration puts the archive (storage folder, database).
pub(crate) fn archive_options(config: &daemon::Config) -> anyhow::Result<archive::ArchiveOptions> {
    config.archive_options().map_err(anyhow::Error::msg)
}

fn main() -> ExitCode {
    // Before any thread exists (clap and the configuration start none).
    let arenas = daemon::malloc::cap_arenas();
    let cli = Cli::parse();
    let config = match daemon::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        print!("{}", summary(&config, cli.config.as_deref()));
        return ExitCode::SUCCESS;
    }
    // candle sizes its thread pool from RAYON_NUM_THREADS when it first
    // runs; set it before any thread exists.
    if config.models.threads > 0 {
        std::env::set_var("RAYON_NUM_THREADS", config.models.threads.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => {
                logging::init(&config.log)?;
                tracing::debug!(?arenas, "glibc malloc arenas");
                daemon::serve::run(config).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Echo { destination } => echo::run(&config, &destination).await,
            Command::Studies { command } => match command {
                StudiesCommand::List { json } => studies::list(&config, json).await,
                StudiesCommand::Hold {
                    study_instance_uid,
                    reason,
                } => retention_cmd::hold(&config, &study_instance_uid, &reason).await,
                StudiesCommand::Release { study_instance_uid } => {
                    retention_cmd::release(&config, &study_instance_uid).await
                }
            },
            Command::Export(args) => export_cmd::run(&config, &args).await,
            Command::Audit {
                command: AuditCommand::Export { since, until },
            } => audit_cmd::export(&config, since.as_deref(), until.as_deref()).await,
            Command::Retention {
                command: RetentionCommand::Run { dry_run, json },
            } => retention_cmd::run(&config, dry_run, json).await,
            Command::Models { command } => match command {
                ModelsCommand::List => models::list(&config).await,
                ModelsCommand::Check => models::check(&config).await,
                ModelsCommand::Activate { name, version } => {
                    models::set_state(&config, &name, &version, archive::ModelState::Active).await
                }
                ModelsCommand::Shadow { name, version } => {
                    models::set_state(&config, &name, &version, archive::ModelState::Shadow).await
                }
                ModelsCommand::Disable { name, version } => {
                    models::set_state(&config, &name, &version, archive::ModelState::Disabled).await
                }
                ModelsCommand::Compare { name, json } => {
                    models::compare(&config, &name, json).await
                }
            },
            Command::Train(args) => {
                lab::train::run(&args)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Analyze(args) => analyze::run(&config, &args).await,
            Command::Evaluate(args) => Ok(match lab::evaluation::run(&args)?.failed {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::from(3),
            }),
            Command::Phantom(args) => {
                lab::phantom_set::run(&args)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Demo(args) => demo::run(config, &args).await,
            Command::Send { to, files } => outbox_cmd::send(&config, &to, &files).await,
            Command::Outbox { command } => match command {
                OutboxCommand::List { json } => outbox_cmd::list(&config, json).await,
                OutboxCommand::Add { to, files } => outbox_cmd::add(&config, &to, &files).await,
                OutboxCommand::Retry { id } => outbox_cmd::retry(&config, id).await,
            },
            Command::Token(args) => token::run(&args),
            Command::Conformance => conformance::run(),
            Command::Config { .. } => unreachable!("handled above"),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", logging::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn summary(c: &daemon::Config, path: Option<&std::path::Path>) -> String {
    let mut s = format!(
        "configuration OK: {}\n",
        daemon::config::describe(path).display()
    );
    s += &format!(
        "  AE title {} listening on {}\n",
        c.dicom.ae_title, c.dicom.listen
    );
    for a in &c.dicom.ae_titles {
        let all = |v: &[String], what: &str| match v.is_empty() {
            true => format!("every {what}"),
            false => v.join(", "),
        };
        s += &format!(
            "  AE title {} too: sources {}; rules {}; models {}\n",
            a.ae_title.trim(),
            all(&a.sources, "source"),
            all(&a.rules, "rule"),
            all(&a.models, "model")
        );
    }
    s += &format!("  storage {}\n", c.storage.dir.display());
    s += &format!(
        "  database {}\n",
        c.database.url.as_deref().map_or_else(
            || format!("sqlite (in the storage folder: {})", archive::DATABASE_FILE),
            daemon::config::database::redacted
        )
    );
    if c.sources.is_empty() {
        s += "  sources: none configured; any calling AE is accepted from loopback only\n";
    }
    for src in &c.sources {
        let hosts = if src.hosts.is_empty() {
            "any host".to_string()
        } else {
            let hosts: Vec<String> = src.hosts.iter().map(|h| h.to_string()).collect();
            hosts.join(", ")
        };
        s += &format!("  source {}: {} from {}\n", src.name, src.ae_title, hosts);
    }
    for d in &c.destinations {
        s += &format!(
            "  destination {}: {}@{}:{}\n",
            d.name, d.ae_title, d.host, d.port
        );
    }
    s
}
