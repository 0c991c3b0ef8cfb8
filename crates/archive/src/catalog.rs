//! What DICOMweb reads: studies, series and instances matched by their
//! attributes (QIDO-RS), and the files of each (WADO-RS).

use std::path::{Path, PathBuf};

use sqlx::FromRow;

use crate::db::{Pool, Sql};

use crate::query::{self, StudySummary};
use crate::ArchiveError;

/// The most rows one query returns.
pub const MAX_MATCHES: u32 = 1000;

/// A study-level query. Text keys take DICOM wildcards (`*`, `?`);
/// Patient's Name matches without regard to case.
#[derive(Debug, Clone, Default)]
pub struct StudyQuery {
    /// Any of these (empty: any study).
    pub study_uids: Vec<String>,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub accession_number: Option<String>,
    /// `YYYYMMDD`, `A-B`, `-B` or `A-`.
    pub study_date: Option<DateRange>,
    /// A modality of one of its series.
    pub modality: Option<String>,
    /// triaged's priority: urgent, flagged, routine.
    pub priority: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// An inclusive range of `YYYYMMDD` dates; either end may be open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl DateRange {
    /// A DICOM date range; `None` if it is not one.
    pub fn parse(s: &str) -> Option<DateRange> {
        let date = |d: &str| {
            (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit())).then(|| d.to_string())
        };
        let ok = |d: &str| d.is_empty() || date(d).is_some();
        match s.split_once('-') {
            None => date(s).map(|d| DateRange {
                from: Some(d.clone()),
                to: Some(d),
            }),
            Some((a, b)) if ok(a) && ok(b) && !(a.is_empty() && b.is_empty()) => Some(DateRange {
                from: date(a),
                to: date(b),
            }),
            _ => None,
        }
    }
}

/// A matched study: its patient and study attributes and triaged's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyRecord {
    pub summary: StudySummary,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_id: Option<String>,
    pub study_time: Option<String>,
    pub referring_physician: Option<String>,
}

#[derive(FromRow)]
struct Patient {
    patient_id: Option<String>,
    patient_name: Option<String>,
    patient_birth_date: Option<String>,
    patient_sex: Option<String>,
    study_id: Option<String>,
    study_time: Option<String>,
    referring_physician: Option<String>,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct SeriesRecord {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub body_part_examined: Option<String>,
    pub instances: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub number_of_frames: Option<i64>,
    pub transfer_syntax_uid: String,
    /// The stored Part 10 file.
    pub path: PathBuf,
}

#[derive(FromRow)]
struct InstanceRow {
    study_instance_uid: String,
    series_instance_uid: String,
    sop_instance_uid: String,
    sop_class_uid: String,
    instance_number: Option<i64>,
    rows: Option<i64>,
    columns: Option<i64>,
    number_of_frames: Option<i64>,
    transfer_syntax_uid: String,
    file_path: String,
}

/// A DICOM wildcard pattern as SQLite GLOB (`*` and `?` are the same;
/// `[` must not open a character class).
fn glob(pattern: &str) -> String {
    pattern.replace('[', "[[]")
}

/// Which instances of a study (and series) to list.
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    pub series_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub sop_class_uid: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// Read-only queries for DICOMweb.
#[derive(Clone)]
pub struct Catalog {
    read: Pool,
    dir: PathBuf,
    /// With the journal: what was acknowledged is awaited before a query.
    journal: Option<crate::journal::Visibility>,
}

impl Catalog {
    pub(crate) fn new(
        read: Pool,
        dir: &Path,
        journal: Option<crate::journal::Visibility>,
    ) -> Catalog {
        Catalog {
            read,
            dir: dir.to_path_buf(),
            journal,
        }
    }

    /// Every instance acknowledged before now is in the index.
    async fn caught_up(&self) {
        if let Some(j) = &self.journal {
            j.caught_up().await;
        }
    }

    pub async fn studies(&self, q: &StudyQuery) -> Result<Vec<StudyRecord>, ArchiveError> {
        self.caught_up().await;
        let mut b: Sql = Sql::new(format!(
            "SELECT {}, st.patient_id, st.patient_name, st.patient_birth_date, st.patient_sex,
                    st.study_id, st.study_time, st.referring_physician
             FROM studies st WHERE 1 = 1",
            query::SUMMARY_COLUMNS
        ));
        if !q.study_uids.is_empty() {
            b.push(" AND st.study_instance_uid IN ")
                .push_list(q.study_uids.iter().cloned());
        }
        if let Some(v) = &q.patient_id {
            b.push(" AND glob(")
                .push_bind(glob(v))
                .push(", st.patient_id)");
        }
        if let Some(v) = &q.patient_name {
            b.push(" AND glob(upper(")
                .push_bind(glob(v))
                .push("), upper(st.patient_name))");
        }
        if let Some(v) = &q.accession_number {
            b.push(" AND glob(")
                .push_bind(glob(v))
                .push(", st.accession_number)");
        }
        if let Some(r) = &q.study_date {
            if let Some(from) = &r.from {
                b.push(" AND st.study_date >= ").push_bind(from.clone());
            }
            if let Some(to) = &r.to {
                b.push(" AND st.study_date <= ").push_bind(to.clone());
            }
        }
        if let Some(m) = &q.modality {
            b.push(
                " AND EXISTS (SELECT 1 FROM series se WHERE se.study_instance_uid = st.study_instance_uid AND glob(",
            )
            .push_bind(glob(m))
            .push(", se.modality))");
        }
        if let Some(p) = &q.priority {
            b.push(" AND st.priority = ").push_bind(p.clone());
        }
        b.push(" ORDER BY st.last_received_at DESC, st.study_instance_uid LIMIT ")
            .push_bind(i64::from(q.limit.min(MAX_MATCHES)))
            .push(" OFFSET ")
            .push_bind(i64::from(q.offset));
        let rows = b
            .fetch_all(&self.read)
            .await
            .map_err(ArchiveError::db("matching studies"))?;
        let e = ArchiveError::db("reading a matched study");
        rows.iter()
            .map(|r| {
                let summary = query::Row::from_row(r)?;
                let p = Patient::from_row(r)?;
                Ok(StudyRecord {
                    summary: summary.into(),
                    patient_id: p.patient_id,
                    patient_name: p.patient_name,
                    patient_birth_date: p.patient_birth_date,
                    patient_sex: p.patient_sex,
                    study_id: p.study_id,
                    study_time: p.study_time,
                    referring_physician: p.referring_physician,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(e)
    }

    /// The series of `study`, optionally one or of one modality.
    pub async fn series(
        &self,
        study: &str,
        series_uid: Option<&str>,
        modality: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<SeriesRecord>, ArchiveError> {
        self.caught_up().await;
        let mut b: Sql = Sql::new(
            "SELECT se.study_instance_uid, se.series_instance_uid, se.modality, se.series_number,
                    se.series_description, se.body_part_examined,
                    (SELECT COUNT(*) FROM instances i WHERE i.series_instance_uid = se.series_instance_uid) AS instances
             FROM series se WHERE se.study_instance_uid = ",
        );
        b.push_bind(study.to_string());
        if let Some(s) = series_uid {
            b.push(" AND se.series_instance_uid = ")
                .push_bind(s.to_string());
        }
        if let Some(m) = modality {
            b.push(" AND glob(")
                .push_bind(glob(m))
                .push(", se.modality)");
        }
        b.push(" ORDER BY se.series_number, se.series_instance_uid LIMIT ")
            .push_bind(i64::from(limit.min(MAX_MATCHES)))
            .push(" OFFSET ")
            .push_bind(i64::from(offset));
        b.fetch_all_as(&self.read)
            .await
            .map_err(ArchiveError::db("matching series"))
    }

    /// The instances of `study` that `q` selects, in series and instance
    /// order.
    pub async fn instances(
        &self,
        study: &str,
        q: &InstanceQuery,
    ) -> Result<Vec<InstanceRecord>, ArchiveError> {
        self.caught_up().await;
        let mut b: Sql = Sql::new(
            "SELECT i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid, i.sop_class_uid,
                    i.instance_number, i.rows, i.columns, i.number_of_frames, i.transfer_syntax_uid, i.file_path
             FROM instances i JOIN series se ON se.series_instance_uid = i.series_instance_uid
             WHERE i.study_instance_uid = ",
        );
        b.push_bind(study.to_string());
        if let Some(s) = &q.series_uid {
            b.push(" AND i.series_instance_uid = ").push_bind(s.clone());
        }
        if let Some(s) = &q.sop_instance_uid {
            b.push(" AND i.sop_instance_uid = ").push_bind(s.clone());
        }
        if let Some(s) = &q.sop_class_uid {
            b.push(" AND i.sop_class_uid = ").push_bind(s.clone());
        }
        b.push(" ORDER BY se.series_number, i.series_instance_uid, i.instance_number, i.sop_instance_uid LIMIT ")
            .push_bind(i64::from(q.limit))
            .push(" OFFSET ")
            .push_bind(i64::from(q.offset));
        let rows: Vec<InstanceRow> = b
            .fetch_all_as(&self.read)
            .await
            .map_err(ArchiveError::db("matching instances"))?;
        Ok(rows
            .into_iter()
            .map(|r| InstanceRecord {
                study_instance_uid: r.study_instance_uid,
                series_instance_uid: r.series_instance_uid,
                sop_instance_uid: r.sop_instance_uid,
                sop_class_uid: r.sop_class_uid,
                instance_number: r.instance_number,
                rows: r.rows,
                columns: r.columns,
                number_of_frames: r.number_of_frames,
                transfer_syntax_uid: r.transfer_syntax_uid,
                path: self.dir.join(r.file_path),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_ranges_parse_as_dicom_writes_them() {
        let r = |f: Option<&str>, t: Option<&str>| {
            Some(DateRange {
                from: f.map(str::to_string),
                to: t.map(str::to_string),
            })
        };
        assert_eq!(
            DateRange::parse("20260101"),
            r(Some("20260101"), Some("20260101"))
        );
        assert_eq!(
            DateRange::parse("20260101-20260131"),
            r(Some("20260101"), Some("20260131"))
        );
        assert_eq!(DateRange::parse("-20260131"), r(None, Some("20260131")));
        assert_eq!(DateRange::parse("20260101-"), r(Some("20260101"), None));
        for bad in ["-", "2026", "2026-01-01", "20260101-x", ""] {
            assert_eq!(DateRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn wildcards_become_globs_and_brackets_stay_literal() {
        assert_eq!(glob("DOE^J*"), "DOE^J*");
        assert_eq!(glob("A[1]?"), "A[[]1]?");
    }
}
