//! Sending DIMSE commands as P-DATA, on either side of an association.

use dicom_ul::association::AsyncAssociation;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

/// A stream an association runs on: TCP, or TLS over TCP.
pub(crate) trait Stream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Send a command set (always small enough for one PDV) on a context.
pub(crate) async fn send_command<S: Stream, A: AsyncAssociation<S> + Send>(
    assoc: &mut A,
    context_id: u8,
    command: Vec<u8>,
) -> Result<(), dicom_ul::association::Error> {
    AsyncAssociation::send(
        assoc,
        &Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        },
    )
    .await
}
