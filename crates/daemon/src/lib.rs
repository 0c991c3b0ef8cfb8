//! The runtime of `triaged serve`, as a library the binary wires up:
//!
//! - [`config`]: the TOML configuration, its embedded defaults and its
//!   validation (every message names its key);
//! - [`live`]: the configuration in force — the file overlaid with the
//!   console's changes — and the console's [`web::Control`] implementation;
//! - [`sink`]: where the DICOM listener puts instances (the archive);
//! - [`deliver`]: the outbox's delivery loop (C-STORE with retries, dead
//!   letter, SR class fallback);
//! - [`models`]: loading the models folder and the start-up lifecycle check;
//! - [`export`]: a study's files copied out, de-identified or not;
//! - [`retention`]: the task that applies `[retention]` (purges by age and
//!   by watermark);
//! - [`syslog`]: forwarding the audit trail to a syslog collector;
//! - [`monitoring`]: models' flag rates, agreement and drift;
//! - [`stats`]: the daemon's counters as Prometheus text;
//! - [`malloc`]: glibc's malloc arenas capped at two before any thread
//!   starts (the one module allowed `unsafe`: a call into the C library);
//! - [`serve`]: start everything, wait for a signal, shut down cleanly.
//!
//! Data flows one way: listener → archive → pipeline → outbox → delivery;
//! this crate owns none of that logic, only its wiring and state.

#![deny(unsafe_code)]

pub mod config;
pub mod deliver;
mod error;
pub mod export;
pub mod live;
pub mod malloc;
pub mod models;
pub mod monitoring;
pub mod retention;
pub mod serve;
pub mod sink;
pub mod stats;
pub mod syslog;

pub use config::Config;
pub use error::Error;
