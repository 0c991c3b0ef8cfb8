//! The two state machines the archive keeps: an analysis job's and an
//! outbox row's (one delivery of one object to one destination).
//!
//! Each state is a type here and is stored as its name (the `state`
//! column's CHECK lists the same names). The transitions allowed are
//! written once, in [`JobState::may_become`] and
//! [`DeliveryState::may_become`]; the statements that move a row (in
//! `jobs.rs` and `outbox.rs`) name their states through these types and
//! are checked against the tables by the tests below. No state name is
//! written as a literal outside this module.

use std::fmt;

use serde::Serialize;

/// Where an analysis job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Assembled, waiting for a worker.
    Ready,
    /// A worker runs the models.
    Analysing,
    /// The models have run; reports are being built.
    Reporting,
    /// Reports queued in the outbox, not all delivered.
    Sending,
    /// Every report delivered (or none was to be sent).
    Done,
    /// No active model applies to the study.
    NotApplicable,
    /// The analysis failed, or a destination gave up on a report.
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Ready,
        JobState::Analysing,
        JobState::Reporting,
        JobState::Sending,
        JobState::Done,
        JobState::NotApplicable,
        JobState::Failed,
    ];
    /// A worker holds the job (a crash leaves it here: `recover`).
    pub const RUNNING: [JobState; 2] = [JobState::Analysing, JobState::Reporting];
    /// Not finished: waiting, running or delivering.
    pub const OPEN: [JobState; 4] = [
        JobState::Ready,
        JobState::Analysing,
        JobState::Reporting,
        JobState::Sending,
    ];
    /// Finished with nothing left to deliver.
    pub const SETTLED: [JobState; 2] = [JobState::Done, JobState::NotApplicable];
    /// Reports were made (a later job's reports supersede these).
    pub const REPORTED: [JobState; 3] = [JobState::Sending, JobState::Done, JobState::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Analysing => "analysing",
            JobState::Reporting => "reporting",
            JobState::Sending => "sending",
            JobState::Done => "done",
            JobState::NotApplicable => "not_applicable",
            JobState::Failed => "failed",
        }
    }

    /// The one table of a job's transitions.
    pub const fn may_become(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            // claim; a crash's recovery puts running jobs back
            (Ready, Analysing)
                | (Analysing | Reporting, Ready)
                | (Analysing, Reporting)
                // finish: reports queued, none to send, no model applies
                | (Analysing | Reporting, Sending | Done | NotApplicable)
                // the analysis fails
                | (Analysing | Reporting, Failed)
                // the outbox settles the job
                | (Sending, Done | Failed)
                // an admin retries a dead delivery
                | (Failed, Sending)
        )
    }
}

/// Where one outbox row (an object for one destination) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Due at `next_attempt_at`.
    Pending,
    /// Claimed by a delivery worker.
    Sending,
    /// The destination took it.
    Delivered,
    /// Rejected for good or out of attempts, until an admin retries it.
    Dead,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Sending,
        DeliveryState::Delivered,
        DeliveryState::Dead,
    ];
    /// Not yet delivered and not given up.
    pub const WAITING: [DeliveryState; 2] = [DeliveryState::Pending, DeliveryState::Sending];
    /// What an admin's retry applies to.
    pub const RETRYABLE: [DeliveryState; 2] = [DeliveryState::Pending, DeliveryState::Dead];

    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// The one table of a delivery's transitions.
    pub const fn may_become(self, next: DeliveryState) -> bool {
        use DeliveryState::*;
        matches!(
            (self, next),
            // claimed; a crash's recovery puts it back
            (Pending, Sending)
                | (Sending, Pending)
                // an attempt's outcome
                | (Sending, Delivered | Dead)
                // an admin's retry
                | (Dead | Pending, Pending)
        )
    }
}

/// A state name the database holds that this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?} in the database")]
pub struct UnknownStateName(pub String);

macro_rules! named {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $t {
            type Err = UnknownStateName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownStateName(s.to_string()))
            }
        }

        impl $t {
            /// The SQL literal of the state (`'ready'`).
            pub(crate) fn sql(self) -> String {
                format!("'{}'", self.as_str())
            }

            /// `state IN (…)` for a statement that moves rows from `from`
            /// to `to`. A move the table does not allow is a bug: it
            /// panics, in every test that runs the statement.
            pub(crate) fn moving(from: &[$t], to: $t) -> String {
                for f in from {
                    assert!(f.may_become(to), "{f} may not become {to}");
                }
                format!("state IN {}", sql_list(from))
            }
        }
    };
}

named!(JobState);
named!(DeliveryState);

/// An SQL list of states for `IN`: `('ready', 'analysing')`.
pub(crate) fn sql_list<T: fmt::Display>(states: &[T]) -> String {
    let names: Vec<String> = states.iter().map(|s| format!("'{s}'")).collect();
    format!("({})", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in DeliveryState::ALL {
            assert_eq!(s.as_str().parse::<DeliveryState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("sent".parse::<DeliveryState>().is_err());
    }

    #[test]
    fn the_migrations_check_lists_every_state() {
        let sql = crate::db::schema_text();
        for s in JobState::ALL {
            assert!(sql.contains(&s.sql()), "{s} not in the schema");
        }
        for s in DeliveryState::ALL {
            assert!(sql.contains(&s.sql()), "{s} not in the schema");
        }
    }

    #[test]
    fn finished_jobs_only_leave_by_retry() {
        use JobState::*;
        for s in JobState::ALL {
            assert!(!Done.may_become(s) && !NotApplicable.may_become(s));
        }
        assert!(Failed.may_become(Sending) && !Failed.may_become(Ready));
        assert!(!Ready.may_become(Sending));
        assert!(!DeliveryState::Delivered.may_become(DeliveryState::Pending));
    }
}
