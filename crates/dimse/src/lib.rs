//! DICOM networking for triaged.
//!
//! This crate speaks the DICOM upper layer (through `dicom-ul`) and the DIMSE
//! services triaged needs: it accepts associations under an
//! [`AssociationPolicy`], answers C-ECHO, and streams every C-STORE data set
//! into a [`StorageSink`] chosen by the caller. It also holds the SCU side
//! (C-ECHO and C-STORE to destinations), over TCP or TLS.
//!
//! It knows nothing of SQLite or of the file layout: whoever runs the
//! [`Listener`] decides where instances go by implementing [`StorageSink`].
//! A sink answers each instance with success or a [`StoreFailure`] carrying
//! the DIMSE status to send back, so a bad data set costs one failure status,
//! never the association.

#![forbid(unsafe_code)]

pub mod command;
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
mod tls;

pub use listener::{Listener, ListenerConfig, ListenerStats};
pub use policy::{
    AssociationPolicy, CalledAe, HostPattern, HostPatternError, LivePolicy, PolicySource,
    SourceRule,
};
pub use shutdown::Shutdown;
pub use sink::{InstanceWriter, StorageSink, StoreFailure, StoreOutcome, StoreRequest};
pub use status::Status;
pub use tls::{ClientTlsSettings, Identity, TlsAcceptor, TlsError, TlsSettings};
