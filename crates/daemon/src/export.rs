//! `triaged export`: a study's files copied to a folder, de-identified or
//! as they are.

use std::path::{Path, PathBuf};

use deid::{Deidentifier, Source};
use dicom_dictionary_std::tags;
use serde::Serialize;

/// What an export wrote and what it refused.
#[derive(Debug, Default, Serialize)]
pub struct Exported {
    /// The files written, in the order of the sources.
    pub written: Vec<PathBuf>,
    pub refused: Vec<Refusal>,
}

/// A source file not exported, and why.
#[derive(Debug, Serialize)]
pub struct Refusal {
    pub file: PathBuf,
    /// Its SOP Instance UID, when it could be read.
    pub sop_instance_uid: Option<String>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: an export writes into a new or empty folder", .0.display())]
    NotEmpty(PathBuf),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Copy `files` into `out` (made if missing; it must be empty), each as
/// `<SOP Instance UID>.dcm`, through `deid` when given. One file that
/// cannot be read or de-identified is refused, and the others written.
pub fn export(
    files: &[(PathBuf, Source)],
    out: &Path,
    deid: Option<&Deidentifier>,
) -> Result<Exported, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    if std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(ExportError::NotEmpty(out.to_path_buf()));
    }
    let mut done = Exported::default();
    for (file, source) in files {
        match one(file, *source, deid) {
            Ok((uid, obj)) => {
                let target = out.join(format!("{uid}.dcm"));
                let partial = out.join(format!(".{uid}.partial"));
                obj.write_to_file(&partial).map_err(|e| ExportError::Io {
                    path: partial.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                std::fs::rename(&partial, &target).map_err(io(&target))?;
                done.written.push(target);
            }
            Err((sop_instance_uid, reason)) => done.refused.push(Refusal {
                file: file.clone(),
                sop_instance_uid,
                reason,
            }),
        }
    }
    Ok(done)
}

type Object = dicom_object::FileDicomObject<dicom_object::InMemDicomObject>;

/// One file read and (optionally) de-identified: its new SOP Instance UID
/// and object, or its own UID (if readable) and why not.
fn one(
    file: &Path,
    source: Source,
    deid: Option<&Deidentifier>,
) -> Result<(String, Object), (Option<String>, String)> {
    let obj = dicom_object::open_file(file).map_err(|e| (None, format!("cannot read: {e}")))?;
    let own = attrs::text(&obj, tags::SOP_INSTANCE_UID);
    let obj = match deid {
        None => obj,
        Some(d) => d
            .file(&obj, source)
            .map_err(|e| (own.clone(), format!("not de-identified: {e}")))?,
    };
    let uid = attrs::text(&obj, tags::SOP_INSTANCE_UID)
        .filter(|u| archive::is_safe_uid(u))
        .ok_or_else(|| (own.clone(), "no usable SOP Instance UID".to_string()))?;
    Ok((uid, obj))
}
