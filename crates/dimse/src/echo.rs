//! C-ECHO SCP: the Verification service.

use crate::command::{self, field, Command};
use crate::sop::VERIFICATION;
use crate::status::Status;

/// The C-ECHO-RSP to a request: always success, echoing *this* request's
/// Message ID (dicom-rs's example answers with a stale one, which breaks
/// `echoscu --repeat`).
pub(crate) fn response(request: &Command) -> Vec<u8> {
    command::response(
        field::C_ECHO_RSP,
        request.message_id,
        Some(
            request
                .affected_sop_class_uid
                .as_deref()
                .unwrap_or(VERIFICATION),
        ),
        None,
        Status::SUCCESS,
        None,
    )
}
