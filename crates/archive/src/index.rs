//! Recording instances in the SQLite index, with group commit.
//!
//! Each commit costs an fsync of the WAL. Associations arriving together
//! would queue for the single writer connection and pay one fsync each;
//! instead one task takes every request waiting in its channel and commits
//! them in one transaction (a savepoint each, so one bad row fails alone).
//! Alone, an instance is committed at once; under load, batches grow.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::db::{begin_write, Pool};
use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::attributes::InstanceAttributes;
use crate::db::NOW;
use crate::writer::Incoming;
use crate::ArchiveError;

const MAX_BATCH: usize = 256;

/// One instance to index.
pub(crate) struct Entry {
    pub attributes: InstanceAttributes,
    pub incoming: Incoming,
    pub file_path: String,
    pub file_size: u64,
}

type Reply = oneshot::Sender<Result<Option<String>, ArchiveError>>;

pub(crate) struct IndexWriter {
    tx: Mutex<Option<mpsc::Sender<(Entry, Reply)>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl IndexWriter {
    /// `node`: this node's name, recorded as the study's `last_node`.
    pub fn start(pool: Pool, node: Arc<str>) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(run(pool, node, rx));
        IndexWriter {
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
        }
    }

    /// Index one instance; resolves once its transaction is committed.
    /// Returns the previous file path if the SOP Instance UID was known.
    pub async fn record(&self, entry: Entry) -> Result<Option<String>, ArchiveError> {
        let closed = || ArchiveError::IndexUnavailable("the archive is closing".into());
        let sender = self.tx.lock().await.clone().ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        sender.send((entry, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Stop taking requests and wait for those queued to be committed.
    pub async fn close(&self) {
        self.tx.lock().await.take();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn run(pool: Pool, node: Arc<str>, mut rx: mpsc::Receiver<(Entry, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        commit_batch(&pool, &node, batch).await;
    }
}

async fn commit_batch(pool: &Pool, node: &str, batch: Vec<(Entry, Reply)>) {
    let size = batch.len();
    let mut results = Vec::with_capacity(size);
    let outcome = match pool.acquire().await {
        Ok(mut conn) => transaction(&mut conn, begin_write(pool), node, &batch, &mut results).await,
        Err(e) => Err(e),
    };
    if size > 1 {
        tracing::debug!(size, "index group commit");
    }
    match outcome {
        Ok(()) => {
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, size, "index commit failed");
            let full = crate::error::database_full(&e);
            for (_, reply) in batch {
                let _ = reply.send(Err(match full {
                    true => ArchiveError::IndexFull(e.to_string()),
                    false => ArchiveError::IndexUnavailable(e.to_string()),
                }));
            }
        }
    }
}

async fn transaction(
    conn: &mut PoolConnection<sqlx::Any>,
    begin: &str,
    node: &str,
    batch: &[(Entry, Reply)],
    results: &mut Vec<Result<Option<String>, ArchiveError>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(begin).execute(&mut **conn).await?;
    for (entry, _) in batch {
        results.push(in_savepoint(conn, node, entry).await);
    }
    if let Err(e) = sqlx::query("COMMIT").execute(&mut **conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
        return Err(e);
    }
    Ok(())
}

async fn in_savepoint(
    conn: &mut PoolConnection<sqlx::Any>,
    node: &str,
    e: &Entry,
) -> Result<Option<String>, ArchiveError> {
    sqlx::query("SAVEPOINT instance")
        .execute(&mut **conn)
        .await
        .map_err(ArchiveError::db("starting a savepoint"))?;
    let result = record(conn, node, e).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO instance")
            .execute(&mut **conn)
            .await
            .map_err(ArchiveError::db("rolling back a savepoint"))?;
    }
    sqlx::query("RELEASE instance")
        .execute(&mut **conn)
        .await
        .map_err(ArchiveError::db("ending a savepoint"))?;
    result
}

/// Upsert study, series and instance (received by `node`). Returns the
/// previous file path if this SOP Instance UID was already stored.
async fn record(
    conn: &mut PoolConnection<sqlx::Any>,
    node: &str,
    e: &Entry,
) -> Result<Option<String>, ArchiveError> {
    let previous: Option<String> =
        sqlx::query_scalar("SELECT file_path FROM instances WHERE sop_instance_uid = $1")
            .bind(&e.attributes.sop_instance_uid)
            .fetch_optional(&mut **conn)
            .await
            .map_err(ArchiveError::db("looking up the instance"))?;
    upsert_studies(conn, node, std::slice::from_ref(&e.attributes)).await?;
    upsert_series(conn, std::slice::from_ref(&e.attributes)).await?;
    upsert_instances(conn, std::slice::from_ref(e)).await?;
    Ok(previous)
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Rows one statement upserts at most. A longer list is cut into blocks
/// of 32, 16, 8, 4, 2 and 1 rows, so that six prepared statements a table
/// serve every length.
const MAX_ROWS: usize = 32;

/// The statements of one table for 1, 2, 4 … [`MAX_ROWS`] rows, each made
/// when first needed.
type Statements = [OnceLock<String>; MAX_ROWS.trailing_zeros() as usize + 1];

/// `rows` upserted in blocks, a statement each: `sql(n)` makes the
/// statement for `n` rows, `bind` binds one row's values in order.
async fn in_blocks<T>(
    conn: &mut PoolConnection<sqlx::Any>,
    rows: &[T],
    statements: &'static Statements,
    sql: fn(usize) -> String,
    bind: for<'q> fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
    action: &'static str,
) -> Result<(), ArchiveError> {
    let mut rest = rows;
    while !rest.is_empty() {
        // The largest power of two that fits, at most MAX_ROWS.
        let n = 1 << rest.len().min(MAX_ROWS).ilog2();
        let (block, tail) = rest.split_at(n);
        let text = statements[n.trailing_zeros() as usize].get_or_init(|| sql(n));
        let query = block.iter().fold(sqlx::query(text), bind);
        query
            .execute(&mut **conn)
            .await
            .map_err(ArchiveError::db(action))?;
        rest = tail;
    }
    Ok(())
}

/// `n` rows of `width` placeholders each, numbered on from row to row,
/// each followed by `tail`: `($1, $2, now), ($3, $4, now)`.
fn values(n: usize, width: usize, tail: &str) -> String {
    let rows: Vec<String> = (0..n)
        .map(|r| {
            let marks: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({}{tail})", marks.join(", "))
        })
        .collect();
    rows.join(", ")
}

/// Each study row of `studies` (received by `node`, one row a study)
/// inserted, or updated with the attributes present.
async fn upsert_studies(
    conn: &mut PoolConnection<sqlx::Any>,
    node: &str,
    studies: &[InstanceAttributes],
) -> Result<(), ArchiveError> {
    static STATEMENTS: Statements = [const { OnceLock::new() }; 6];
    fn sql(n: usize) -> String {
        format!(
            "INSERT INTO studies (study_instance_uid, patient_id, patient_name, patient_birth_date, patient_sex,
                accession_number, study_id, study_date, study_time, study_description, referring_physician,
                last_node, first_received_at, last_received_at)
             VALUES {}
             ON CONFLICT (study_instance_uid) DO UPDATE SET
                patient_id = COALESCE(excluded.patient_id, studies.patient_id),
                patient_name = COALESCE(excluded.patient_name, studies.patient_name),
                patient_birth_date = COALESCE(excluded.patient_birth_date, studies.patient_birth_date),
                patient_sex = COALESCE(excluded.patient_sex, studies.patient_sex),
                accession_number = COALESCE(excluded.accession_number, studies.accession_number),
                study_id = COALESCE(excluded.study_id, studies.study_id),
                study_date = COALESCE(excluded.study_date, studies.study_date),
                study_time = COALESCE(excluded.study_time, studies.study_time),
                study_description = COALESCE(excluded.study_description, studies.study_description),
                referring_physician = COALESCE(excluded.referring_physician, studies.referring_physician),
                last_received_at = excluded.last_received_at,
                last_node = excluded.last_node",
            values(n, 12, &format!(", {NOW}, {NOW}"))
        )
    }
    fn bind<'q>(q: AnyQuery<'q>, (a, node): &'q (&InstanceAttributes, &str)) -> AnyQuery<'q> {
        q.bind(&a.study_instance_uid)
            .bind(&a.patient_id)
            .bind(&a.patient_name)
            .bind(&a.patient_birth_date)
            .bind(&a.patient_sex)
            .bind(&a.accession_number)
            .bind(&a.study_id)
            .bind(&a.study_date)
            .bind(&a.study_time)
            .bind(&a.study_description)
            .bind(&a.referring_physician)
            .bind(*node)
    }
    let rows: Vec<(&InstanceAttributes, &str)> = studies.iter().map(|a| (a, node)).collect();
    in_blocks(conn, &rows, &STATEMENTS, sql, bind, "recording the study").await
}

/// Each series row of `series` (one row a series) inserted, or updated
/// with the attributes present (never moved to another study).
async fn upsert_series(
    conn: &mut PoolConnection<sqlx::Any>,
    series: &[InstanceAttributes],
) -> Result<(), ArchiveError> {
    static STATEMENTS: Statements = [const { OnceLock::new() }; 6];
    fn sql(n: usize) -> String {
        format!(
            "INSERT INTO series (series_instance_uid, study_instance_uid, modality, body_part_examined,
                series_number, series_description, first_received_at, last_received_at)
             VALUES {}
             ON CONFLICT (series_instance_uid) DO UPDATE SET
                modality = COALESCE(excluded.modality, series.modality),
                body_part_examined = COALESCE(excluded.body_part_examined, series.body_part_examined),
                series_number = COALESCE(excluded.series_number, series.series_number),
                series_description = COALESCE(excluded.series_description, series.series_description),
                last_received_at = excluded.last_received_at",
            values(n, 6, &format!(", {NOW}, {NOW}"))
        )
    }
    fn bind<'q>(q: AnyQuery<'q>, a: &'q InstanceAttributes) -> AnyQuery<'q> {
        q.bind(&a.series_instance_uid)
            .bind(&a.study_instance_uid)
            .bind(&a.modality)
            .bind(&a.body_part_examined)
            .bind(a.series_number)
            .bind(&a.series_description)
    }
    in_blocks(conn, series, &STATEMENTS, sql, bind, "recording the series").await
}

/// Each instance row of `entries` (no SOP Instance UID twice: a statement
/// may not upsert one row twice) inserted, or replaced (a resend).
async fn upsert_instances(
    conn: &mut PoolConnection<sqlx::Any>,
    entries: &[Entry],
) -> Result<(), ArchiveError> {
    static STATEMENTS: Statements = [const { OnceLock::new() }; 6];
    fn sql(n: usize) -> String {
        format!(
            "INSERT INTO instances (sop_instance_uid, sop_class_uid, series_instance_uid, study_instance_uid,
                instance_number, transfer_syntax_uid, rows, columns, number_of_frames, view_position,
                file_path, file_size, calling_ae_title, source, peer_address, called_ae_title, received_at)
             VALUES {}
             ON CONFLICT (sop_instance_uid) DO UPDATE SET
                sop_class_uid = excluded.sop_class_uid,
                series_instance_uid = excluded.series_instance_uid,
                study_instance_uid = excluded.study_instance_uid,
                instance_number = excluded.instance_number,
                transfer_syntax_uid = excluded.transfer_syntax_uid,
                rows = excluded.rows,
                columns = excluded.columns,
                number_of_frames = excluded.number_of_frames,
                view_position = excluded.view_position,
                file_path = excluded.file_path,
                file_size = excluded.file_size,
                calling_ae_title = excluded.calling_ae_title,
                source = excluded.source,
                peer_address = excluded.peer_address,
                called_ae_title = excluded.called_ae_title,
                received_at = excluded.received_at,
                receive_count = instances.receive_count + 1",
            values(n, 16, &format!(", {NOW}"))
        )
    }
    fn bind<'q>(q: AnyQuery<'q>, e: &'q Entry) -> AnyQuery<'q> {
        let (a, incoming) = (&e.attributes, &e.incoming);
        q.bind(&a.sop_instance_uid)
            .bind(&a.sop_class_uid)
            .bind(&a.series_instance_uid)
            .bind(&a.study_instance_uid)
            .bind(a.instance_number)
            .bind(&incoming.transfer_syntax_uid)
            .bind(a.rows)
            .bind(a.columns)
            .bind(a.number_of_frames)
            .bind(&a.view_position)
            .bind(&e.file_path)
            .bind(e.file_size as i64)
            .bind(&incoming.calling_ae_title)
            .bind(&incoming.source)
            .bind(&incoming.peer_address)
            .bind(&incoming.called_ae_title)
    }
    in_blocks(
        conn,
        entries,
        &STATEMENTS,
        sql,
        bind,
        "recording the instance",
    )
    .await
}

/// Index `entries` (in journal order) and advance `node`'s journal
/// checkpoint to `checkpoint` (segment, offset), in one transaction: all
/// of them or none, so that recovery replays exactly what is not indexed.
/// Each entry's previous file path, as [`IndexWriter::record`] answers.
pub(crate) async fn record_up_to(
    pool: &Pool,
    node: &str,
    entries: &[Entry],
    checkpoint: (u64, u64),
) -> Result<Vec<Option<String>>, ArchiveError> {
    const ACTION: &str = "committing materialised instances";
    let mut conn = pool.acquire().await.map_err(ArchiveError::db(ACTION))?;
    sqlx::query(begin_write(pool))
        .execute(&mut *conn)
        .await
        .map_err(ArchiveError::db(ACTION))?;
    let result = async {
        let previous = record_all(&mut conn, node, entries).await?;
        sqlx::query(
            r#"INSERT INTO journal_checkpoint (node, segment, "offset") VALUES ($1, $2, $3)
               ON CONFLICT (node) DO UPDATE SET segment = excluded.segment, "offset" = excluded."offset""#,
        )
        .bind(node)
        .bind(checkpoint.0 as i64)
        .bind(checkpoint.1 as i64)
        .execute(&mut *conn)
        .await
        .map_err(ArchiveError::db("advancing the journal checkpoint"))?;
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(ArchiveError::db(ACTION))?;
        Ok(previous)
    }
    .await;
    if result.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    result
}

/// `node`'s journal checkpoint (segment, offset), if it has one.
pub(crate) async fn checkpoint(
    pool: &Pool,
    node: &str,
) -> Result<Option<(u64, u64)>, ArchiveError> {
    let row: Option<(i64, i64)> =
        sqlx::query_as(r#"SELECT segment, "offset" FROM journal_checkpoint WHERE node = $1"#)
            .bind(node)
            .fetch_optional(pool)
            .await
            .map_err(ArchiveError::db("reading the journal checkpoint"))?;
    Ok(row.map(|(s, o)| (s as u64, o as u64)))
}

/// `entries` (in order) recorded as [`record`] one after another would
/// record them, in a few statements instead of four an entry: the
/// previous paths looked up together, each study and series upserted
/// once with its attributes merged, the instances many rows a statement.
/// Each entry's previous file path.
async fn record_all(
    conn: &mut PoolConnection<sqlx::Any>,
    node: &str,
    entries: &[Entry],
) -> Result<Vec<Option<String>>, ArchiveError> {
    let known = stored_paths(conn, entries).await?;
    let studies = merged(entries, |a| &a.study_instance_uid, later_study);
    upsert_studies(conn, node, &studies).await?;
    let series = merged(entries, |a| &a.series_instance_uid, later_series);
    upsert_series(conn, &series).await?;
    for run in distinct_runs(entries) {
        upsert_instances(conn, run).await?;
    }
    Ok(previous_paths(known, entries))
}

/// `entries` cut before each SOP Instance UID already in its run.
fn distinct_runs(entries: &[Entry]) -> Vec<&[Entry]> {
    let mut runs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut start = 0;
    for (i, e) in entries.iter().enumerate() {
        if !seen.insert(e.attributes.sop_instance_uid.as_str()) {
            runs.push(&entries[start..i]);
            seen.clear();
            seen.insert(e.attributes.sop_instance_uid.as_str());
            start = i;
        }
    }
    runs.push(&entries[start..]);
    runs
}

/// Each entry's previous file path: the one indexed before the batch
/// (`known`), or an earlier entry's of the same UID.
fn previous_paths(mut known: HashMap<String, String>, entries: &[Entry]) -> Vec<Option<String>> {
    entries
        .iter()
        .map(|e| known.insert(e.attributes.sop_instance_uid.clone(), e.file_path.clone()))
        .collect()
}

/// UIDs looked up in one statement.
const LOOKUP: usize = 32;

/// The file path of each of `entries`' SOP Instance UIDs already indexed,
/// [`LOOKUP`] UIDs a statement (the last repeated to fill one: a single
/// prepared statement serves every batch size).
async fn stored_paths(
    conn: &mut PoolConnection<sqlx::Any>,
    entries: &[Entry],
) -> Result<HashMap<String, String>, ArchiveError> {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT sop_instance_uid, file_path FROM instances WHERE sop_instance_uid IN {}",
            values(1, LOOKUP, "")
        )
    });
    let mut known = HashMap::new();
    for chunk in entries.chunks(LOOKUP) {
        let mut query = sqlx::query_as::<_, (String, String)>(sql);
        for i in 0..LOOKUP {
            query = query.bind(&chunk[i.min(chunk.len() - 1)].attributes.sop_instance_uid);
        }
        let found = query
            .fetch_all(&mut **conn)
            .await
            .map_err(ArchiveError::db("looking up the instances"))?;
        known.extend(found);
    }
    Ok(known)
}

/// One row for each distinct `key` of `entries`, in order of first
/// appearance: the first entry's attributes with each later one's folded
/// in by `fold`, as upserting them one after another leaves the row.
fn merged<'a>(
    entries: &'a [Entry],
    key: impl Fn(&'a InstanceAttributes) -> &'a str,
    fold: impl Fn(&mut InstanceAttributes, &InstanceAttributes),
) -> Vec<InstanceAttributes> {
    let mut rows: Vec<InstanceAttributes> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for a in entries.iter().map(|e| &e.attributes) {
        match at.get(key(a)) {
            Some(&i) => fold(&mut rows[i], a),
            None => {
                at.insert(key(a), rows.len());
                rows.push(a.clone());
            }
        }
    }
    rows
}

/// A later value present wins (the upserts' `COALESCE(excluded.x, x)`).
fn later<T: Clone>(to: &mut Option<T>, from: &Option<T>) {
    if from.is_some() {
        to.clone_from(from);
    }
}

/// The study attributes [`upsert_study`] updates.
fn later_study(to: &mut InstanceAttributes, from: &InstanceAttributes) {
    later(&mut to.patient_id, &from.patient_id);
    later(&mut to.patient_name, &from.patient_name);
    later(&mut to.patient_birth_date, &from.patient_birth_date);
    later(&mut to.patient_sex, &from.patient_sex);
    later(&mut to.accession_number, &from.accession_number);
    later(&mut to.study_id, &from.study_id);
    later(&mut to.study_date, &from.study_date);
    later(&mut to.study_time, &from.study_time);
    later(&mut to.study_description, &from.study_description);
    later(&mut to.referring_physician, &from.referring_physician);
}

/// The series attributes [`upsert_series`] updates (its study stays the
/// first's: an upsert does not move a series).
fn later_series(to: &mut InstanceAttributes, from: &InstanceAttributes) {
    later(&mut to.modality, &from.modality);
    later(&mut to.body_part_examined, &from.body_part_examined);
    later(&mut to.series_number, &from.series_number);
    later(&mut to.series_description, &from.series_description);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, Target};

    fn entry(
        study: &str,
        series: &str,
        sop: &str,
        set: impl FnOnce(&mut InstanceAttributes),
    ) -> Entry {
        let mut attributes = InstanceAttributes {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: sop.into(),
            study_instance_uid: study.into(),
            series_instance_uid: series.into(),
            ..Default::default()
        };
        set(&mut attributes);
        Entry {
            file_path: format!("{study}/{series}/{sop}.dcm"),
            file_size: sop.len() as u64,
            attributes,
            incoming: Incoming {
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                sop_instance_uid: sop.into(),
                transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
                calling_ae_title: "TESTSCU".into(),
                called_ae_title: "TRIAGED".into(),
                source: "test".into(),
                peer_address: "127.0.0.1".into(),
            },
        }
    }

    /// Every row of the three tables, timestamps left out.
    async fn rows(pool: &Pool) -> Vec<String> {
        let mut all = Vec::new();
        for sql in [
            "SELECT quote(study_instance_uid)||quote(patient_id)||quote(patient_name)||quote(patient_birth_date)
                ||quote(patient_sex)||quote(accession_number)||quote(study_id)||quote(study_date)||quote(study_time)
                ||quote(study_description)||quote(referring_physician)||quote(last_node)
             FROM studies ORDER BY study_instance_uid",
            "SELECT quote(series_instance_uid)||quote(study_instance_uid)||quote(modality)||quote(body_part_examined)
                ||quote(series_number)||quote(series_description)
             FROM series ORDER BY series_instance_uid",
            "SELECT quote(sop_instance_uid)||quote(series_instance_uid)||quote(study_instance_uid)||quote(file_path)
                ||quote(file_size)||quote(receive_count)||quote(instance_number)
             FROM instances ORDER BY sop_instance_uid",
        ] {
            let found: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
            all.extend(found);
        }
        all
    }

    /// A journal batch, recorded in a few statements, leaves the index as
    /// one upsert after another would, and answers the same previous
    /// paths: attributes present later win, a resend moved to another
    /// series replaces the stored row, a UID twice in the batch replaces
    /// its own first copy, and a resend past the first lookup statement
    /// is found.
    #[tokio::test]
    async fn a_batch_records_what_one_upsert_after_another_would() {
        let seed = entry("2.25.1", "2.25.1.1", "2.25.1.1.1", |a| {
            a.patient_name = Some("SEED".into());
            a.modality = Some("CT".into());
        });
        let mut batch: Vec<Entry> = (0..LOOKUP + 3)
            .map(|n| {
                entry("2.25.2", "2.25.2.1", &format!("2.25.2.1.{n}"), |a| {
                    a.accession_number = (n % 2 == 0).then(|| format!("A{n}"));
                    a.series_number = (n == 5).then_some(7);
                })
            })
            .collect();
        batch.extend([
            entry("2.25.1", "2.25.1.1", "2.25.1.1.2", |a| {
                a.patient_name = Some("FIRST".into());
                a.study_description = None;
                a.modality = Some("CT".into());
            }),
            entry("2.25.1", "2.25.1.2", "2.25.1.2.1", |a| {
                a.study_description = Some("LATER".into());
                a.series_number = Some(2);
            }),
            // The seeded instance, resent under another series.
            entry("2.25.1", "2.25.1.2", "2.25.1.1.1", |a| {
                a.patient_name = Some("LAST".into());
                a.body_part_examined = Some("HEAD".into());
                a.instance_number = Some(3);
            }),
            // An instance twice in the batch.
            entry("2.25.1", "2.25.1.1", "2.25.1.1.2", |a| {
                a.patient_sex = Some("O".into());
                a.series_description = Some("AGAIN".into());
            }),
        ]);
        batch.last_mut().unwrap().file_size = 99;

        let mut indexes = Vec::new();
        let mut answers = Vec::new();
        for batched in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(&Target::Sqlite(dir.path().join("index.db")))
                .await
                .unwrap();
            record_up_to(&db.write, "n1", std::slice::from_ref(&seed), (0, 1))
                .await
                .unwrap();
            let previous = if batched {
                record_up_to(&db.write, "n1", &batch, (0, 2)).await.unwrap()
            } else {
                let mut conn = db.write.acquire().await.unwrap();
                let mut previous = Vec::new();
                for e in &batch {
                    previous.push(record(&mut conn, "n1", e).await.unwrap());
                }
                previous
            };
            indexes.push(rows(&db.write).await);
            answers.push(previous);
            db.close().await;
        }
        assert_eq!(indexes[0], indexes[1]);
        assert_eq!(answers[0], answers[1]);
        // What the two agree on is what the upserts mean.
        let n = LOOKUP + 3;
        assert_eq!(
            answers[1][n + 2].as_deref(),
            Some("2.25.1/2.25.1.1/2.25.1.1.1.dcm")
        );
        assert_eq!(
            answers[1][n + 3].as_deref(),
            Some("2.25.1/2.25.1.1/2.25.1.1.2.dcm")
        );
        assert_eq!(answers[1].iter().flatten().count(), 2);
        let study = &indexes[1][0];
        assert!(
            study.contains("'LAST'") && study.contains("'LATER'") && study.contains("'O'"),
            "{study}"
        );
        let stored = indexes[1]
            .iter()
            .find(|r| r.starts_with("'2.25.1.1.1'"))
            .unwrap();
        assert!(
            stored.contains("'2.25.1/2.25.1.2/2.25.1.1.1.dcm'") && stored.ends_with("23"),
            "{stored}"
        );
    }

    /// No statement upserts one instance twice (PostgreSQL refuses it):
    /// a UID already in the run starts the next one, order kept.
    #[test]
    fn a_uid_again_starts_a_new_run() {
        let batch: Vec<Entry> = ["a", "b", "a", "c", "b", "d"]
            .iter()
            .map(|sop| entry("2.25.3", "2.25.3.1", sop, |_| ()))
            .collect();
        let runs: Vec<Vec<&str>> = distinct_runs(&batch)
            .iter()
            .map(|run| {
                run.iter()
                    .map(|e| e.attributes.sop_instance_uid.as_str())
                    .collect()
            })
            .collect();
        assert_eq!(runs, [vec!["a", "b"], vec!["a", "c", "b", "d"]]);
    }
}
