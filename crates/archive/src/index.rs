//! Recording an instance in the SQLite index.

use sqlx::SqlitePool;

use crate::attributes::InstanceAttributes;
use crate::writer::Incoming;
use crate::ArchiveError;

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Upsert study, series and instance in one transaction. Returns the
/// previous file path if this SOP Instance UID was already stored.
pub(crate) async fn record(
    pool: &SqlitePool,
    a: &InstanceAttributes,
    incoming: &Incoming,
    file_path: &str,
    file_size: u64,
) -> Result<Option<String>, ArchiveError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(ArchiveError::db("starting a transaction"))?;
    let previous: Option<String> =
        sqlx::query_scalar("SELECT file_path FROM instances WHERE sop_instance_uid = ?")
            .bind(&a.sop_instance_uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(ArchiveError::db("looking up the instance"))?;

    sqlx::query(&format!(
        "INSERT INTO studies (study_instance_uid, patient_id, patient_name, patient_birth_date, patient_sex,
            accession_number, study_id, study_date, study_time, study_description, referring_physician,
            first_received_at, last_received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NOW}, {NOW})
         ON CONFLICT (study_instance_uid) DO UPDATE SET
            patient_id = COALESCE(excluded.patient_id, patient_id),
            patient_name = COALESCE(excluded.patient_name, patient_name),
            patient_birth_date = COALESCE(excluded.patient_birth_date, patient_birth_date),
            patient_sex = COALESCE(excluded.patient_sex, patient_sex),
            accession_number = COALESCE(excluded.accession_number, accession_number),
            study_id = COALESCE(excluded.study_id, study_id),
            study_date = COALESCE(excluded.study_date, study_date),
            study_time = COALESCE(excluded.study_time, study_time),
            study_description = COALESCE(excluded.study_description, study_description),
            referring_physician = COALESCE(excluded.referring_physician, referring_physician),
            last_received_at = excluded.last_received_at"
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
    .execute(&mut *tx)
    .await
    .map_err(ArchiveError::db("recording the study"))?;

    sqlx::query(&format!(
        "INSERT INTO series (series_instance_uid, study_instance_uid, modality, body_part_examined,
            series_number, series_description, first_received_at, last_received_at)
         VALUES (?, ?, ?, ?, ?, ?, {NOW}, {NOW})
         ON CONFLICT (series_instance_uid) DO UPDATE SET
            modality = COALESCE(excluded.modality, modality),
            body_part_examined = COALESCE(excluded.body_part_examined, body_part_examined),
            series_number = COALESCE(excluded.series_number, series_number),
            series_description = COALESCE(excluded.series_description, series_description),
            last_received_at = excluded.last_received_at"
    ))
    .bind(&a.series_instance_uid)
    .bind(&a.study_instance_uid)
    .bind(&a.modality)
    .bind(&a.body_part_examined)
    .bind(a.series_number)
    .bind(&a.series_description)
    .execute(&mut *tx)
    .await
    .map_err(ArchiveError::db("recording the series"))?;

    sqlx::query(&format!(
        "INSERT INTO instances (sop_instance_uid, sop_class_uid, series_instance_uid, study_instance_uid,
            instance_number, transfer_syntax_uid, rows, columns, number_of_frames, view_position,
            file_path, file_size, calling_ae_title, source, peer_address, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NOW})
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
            received_at = excluded.received_at,
            receive_count = receive_count + 1"
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
    .execute(&mut *tx)
    .await
    .map_err(ArchiveError::db("recording the instance"))?;

    tx.commit().await.map_err(ArchiveError::db("committing"))?;
    Ok(previous)
}
