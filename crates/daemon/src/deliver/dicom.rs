//! DICOM destinations: the SR and heatmap captures by C-STORE, with the
//! SR class fallback.

use dicom_dictionary_std::tags;
use dimse::scu::{self, Outgoing, Peer, ScuSettings};
use dimse::Status;

use super::Outcome;
use crate::config::DestinationConfig;
use crate::Error;

/// Read a DICOM file into what the C-STORE SCU sends.
pub fn load(path: &std::path::Path) -> Result<Outgoing, Error> {
    let unreadable = |detail: String| Error::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    let obj = dicom_object::open_file(path).map_err(|e| unreadable(e.to_string()))?;
    let text = |t| attrs::text(&obj, t);
    let class = text(tags::SOP_CLASS_UID).ok_or_else(|| unreadable("no SOP Class UID".into()))?;
    let instance =
        text(tags::SOP_INSTANCE_UID).ok_or_else(|| unreadable("no SOP Instance UID".into()))?;
    Ok(Outgoing {
        sop_class_uid: class,
        sop_instance_uid: instance,
        dataset: obj.into_inner(),
    })
}

/// The de-identifier of `dest` (`None`: it takes objects as they are),
/// made once for a batch: its key is a file.
pub fn deidentifier(
    storage: &std::path::Path,
    dest: &DestinationConfig,
) -> Result<Option<deid::Deidentifier>, Error> {
    dest.deidentifier(storage).map_err(|e| Error::Deidentify {
        destination: dest.name.clone(),
        detail: e.to_string(),
    })
}

/// What a destination receives of a DICOM file: the object, de-identified
/// by `deid` when it has one (its own key, so a resend is the same
/// object); `source` says whether triaged made it.
pub fn load_for(
    path: &std::path::Path,
    deid: Option<&deid::Deidentifier>,
    source: deid::Source,
    destination: &str,
) -> Result<Outgoing, Error> {
    let o = load(path)?;
    let Some(deid) = deid else {
        return Ok(o);
    };
    let dataset = deid
        .object(&o.dataset, source)
        .map_err(|e| Error::Deidentify {
            destination: destination.to_string(),
            detail: format!("{}: {e}", o.sop_instance_uid),
        })?;
    Ok(Outgoing {
        sop_class_uid: o.sop_class_uid,
        sop_instance_uid: attrs::text(&dataset, tags::SOP_INSTANCE_UID).unwrap_or_default(),
        dataset,
    })
}

/// Send objects to one destination over one association. A Comprehensive
/// 3D SR the peer has no context for is sent again as Comprehensive SR
/// (a deterministic new UID, so retries never duplicate it).
pub async fn send(settings: &ScuSettings, peer: &Peer, items: &[Outgoing]) -> Vec<Outcome> {
    let statuses: Vec<Option<Status>> = match scu::store(settings, peer, items).await {
        Ok(r) => r.into_iter().map(|s| s.status).collect(),
        // Not one class accepted: each item is handled as "no context".
        Err(scu::ScuError::NotAccepted { .. }) => vec![None; items.len()],
        Err(e) => {
            return items
                .iter()
                .map(|_| Outcome::Failed {
                    status: None,
                    error: e.to_string(),
                    permanent: false,
                })
                .collect()
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (item, status) in items.iter().zip(statuses) {
        out.push(match status {
            Some(s) if s.is_ok() => Outcome::Delivered { status: s, note: None },
            Some(s) => Outcome::Failed {
                status: Some(s),
                error: format!("{} answered C-STORE with status {s}", peer.ae_title),
                permanent: s.is_permanent_failure(),
            },
            None => match report::sr::as_comprehensive(&item.dataset) {
                Some((dataset, uid)) => {
                    let fallback = Outgoing {
                        sop_class_uid: report::sr::COMPREHENSIVE_SR.into(),
                        sop_instance_uid: uid.clone(),
                        dataset,
                    };
                    match Box::pin(send(settings, peer, std::slice::from_ref(&fallback))).await.pop() {
                        Some(Outcome::Delivered { status, .. }) => Outcome::Delivered {
                            status,
                            note: Some(format!(
                                "sent as Comprehensive SR {uid}: the peer does not take Comprehensive 3D SR"
                            )),
                        },
                        Some(failed) => failed,
                        None => Outcome::Failed { status: None, error: "no result".into(), permanent: false },
                    }
                }
                None => Outcome::Failed {
                    status: None,
                    error: format!("{} accepted no presentation context for {}", peer.ae_title, item.sop_class_uid),
                    permanent: true,
                },
            },
        });
    }
    out
}
