//! DICOM networking for triaged.
//!
//! This crate speaks the DICOM upper layer (through `dicom-ul`) and the DIMSE
//! services triaged needs: it accepts associations under an
//! [`AssociationPolicy`], answers C-ECHO, and streams every C-STORE data set
//! into a [`StorageSink`] chosen by the caller. It also holds the SCU side
//! (C-ECHO today, C-STORE for reports later).
//!
//! It knows nothing of SQLite or of the file layout: whoever runs the
//! [`Listener`] decides where instances go by implementing [`StorageSink`].
//! A sink answers each instance with success or a [`StoreFailure`] carrying
//! the DIMSE status to send back, so a bad data set costs one failure status,
//! never the association.

mod command;
mod echo;
mod handler;
mod limit;
mod listener;
mod pdv;
mod policy;
pub mod scu;
mod shutdown;
pub mod sink;
pub mod sop;
pub mod status;
mod storage_classes;
mod store;

pub use listener::{Listener, ListenerConfig};
pub use policy::{AssociationPolicy, HostPattern, HostPatternError, SourceRule};
pub use shutdown::Shutdown;
pub use sink::{InstanceWriter, StorageSink, StoreFailure, StoreOutcome, StoreRequest};
pub use status::Status;

/// The Implementation Class UID triaged puts in associations and file meta.
///
/// `2.25.` + a fixed UUID as a decimal integer, so it never changes with
/// dicom-rs releases (whose own UID changes with each version).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.267283936018423651742918730532093427713";

/// The Implementation Version Name: at most 16 characters.
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("TRIAGED_", env!("CARGO_PKG_VERSION"));
