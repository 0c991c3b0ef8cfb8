//! Recording instances in the SQLite index, with group commit.
//!
//! Each commit costs an fsync of the WAL. Associations arriving together
//! would queue for the single writer connection and pay one fsync each;
//! instead one task takes every request waiting in its channel and commits
//! them in one transaction (a savepoint each, so one bad row fails alone).
//! Alone, an instance is committed at once; under load, batches grow.

use std::sync::Arc;

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
    tx: &mut PoolConnection<sqlx::Any>,
    node: &str,
    e: &Entry,
) -> Result<Option<String>, ArchiveError> {
    let (a, incoming, file_path, file_size) = (
        &e.attributes,
        &e.incoming,
        e.file_path.as_str(),
        e.file_size,
    );
    let previous: Option<String> =
        sqlx::query_scalar("SELECT file_path FROM instances WHERE sop_instance_uid = $1")
            .bind(&a.sop_instance_uid)
            .fetch_optional(&mut **tx)
            .await
            .map_err(ArchiveError::db("looking up the instance"))?;

    sqlx::query(&format!(
        "INSERT INTO studies (study_instance_uid, patient_id, patient_name, patient_birth_date, patient_sex,
            accession_number, study_id, study_date, study_time, study_description, referring_physician,
            first_received_at, last_received_at, last_node)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, {NOW}, {NOW}, $12)
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
            last_node = excluded.last_node"
    ))
    .bind(&a.study_instance_uid)
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
    .bind(node)
    .execute(&mut **tx)
    .await
    .map_err(ArchiveError::db("recording the study"))?;

    sqlx::query(&format!(
        "INSERT INTO series (series_instance_uid, study_instance_uid, modality, body_part_examined,
            series_number, series_description, first_received_at, last_received_at)
         VALUES ($1, $2, $3, $4, $5, $6, {NOW}, {NOW})
         ON CONFLICT (series_instance_uid) DO UPDATE SET
            modality = COALESCE(excluded.modality, series.modality),
            body_part_examined = COALESCE(excluded.body_part_examined, series.body_part_examined),
            series_number = COALESCE(excluded.series_number, series.series_number),
            series_description = COALESCE(excluded.series_description, series.series_description),
            last_received_at = excluded.last_received_at"
    ))
    .bind(&a.series_instance_uid)
    .bind(&a.study_instance_uid)
    .bind(&a.modality)
    .bind(&a.body_part_examined)
    .bind(a.series_number)
    .bind(&a.series_description)
    .execute(&mut **tx)
    .await
    .map_err(ArchiveError::db("recording the series"))?;

    sqlx::query(&format!(
        "INSERT INTO instances (sop_instance_uid, sop_class_uid, series_instance_uid, study_instance_uid,
            instance_number, transfer_syntax_uid, rows, columns, number_of_frames, view_position,
            file_path, file_size, calling_ae_title, source, peer_address, called_ae_title, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, {NOW})
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
            receive_count = instances.receive_count + 1"
    ))
    .bind(&a.sop_instance_uid)
    .bind(&a.sop_class_uid)
    .bind(&a.series_instance_uid)
    .bind(&a.study_instance_uid)
    .bind(a.instance_number)
    .bind(&incoming.transfer_syntax_uid)
    .bind(a.rows)
    .bind(a.columns)
    .bind(a.number_of_frames)
    .bind(&a.view_position)
    .bind(file_path)
    .bind(file_size as i64)
    .bind(&incoming.calling_ae_title)
    .bind(&incoming.source)
    .bind(&incoming.peer_address)
    .bind(&incoming.called_ae_title)
    .execute(&mut **tx)
    .await
    .map_err(ArchiveError::db("recording the instance"))?;

    Ok(previous)
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
    let mut previous = Vec::with_capacity(entries.len());
    let mut result = Ok(());
    for e in entries {
        match record(&mut conn, node, e).await {
            Ok(p) => previous.push(p),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        result = sqlx::query(
            r#"INSERT INTO journal_checkpoint (node, segment, "offset") VALUES ($1, $2, $3)
               ON CONFLICT (node) DO UPDATE SET segment = excluded.segment, "offset" = excluded."offset""#,
        )
        .bind(node)
        .bind(checkpoint.0 as i64)
        .bind(checkpoint.1 as i64)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(ArchiveError::db("advancing the journal checkpoint"));
    }
    if result.is_ok() {
        result = sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(ArchiveError::db(ACTION));
    }
    if let Err(e) = result {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return Err(e);
    }
    Ok(previous)
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
