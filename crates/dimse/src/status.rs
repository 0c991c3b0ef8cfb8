//! DIMSE status codes that triaged sends or interprets (PS3.7 Annex C).

use std::fmt;

/// A DIMSE status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    pub const SUCCESS: Status = Status(0x0000);
    /// The SCP does not implement the requested operation.
    pub const UNRECOGNIZED_OPERATION: Status = Status(0x0211);
    /// The requested SOP class is not supported on this presentation context.
    pub const SOP_CLASS_NOT_SUPPORTED: Status = Status(0x0122);
    /// Storage: refused, out of resources (disk full or unwritable).
    pub const OUT_OF_RESOURCES: Status = Status(0xA700);
    /// Storage: the data set does not match the SOP class.
    pub const DATA_SET_DOES_NOT_MATCH_SOP_CLASS: Status = Status(0xA900);
    /// Storage: cannot understand; the data set could not be parsed.
    pub const CANNOT_UNDERSTAND: Status = Status(0xC000);
    /// Storage: cannot understand; an attribute needed to file the instance
    /// (Study, Series or SOP Instance UID) is missing or empty.
    pub const MISSING_ATTRIBUTE: Status = Status(0xC001);
    /// Storage: cannot understand; the data set's SOP Instance UID differs
    /// from the command's Affected SOP Instance UID.
    pub const UID_MISMATCH: Status = Status(0xC002);
    /// Processing failure (generic).
    pub const PROCESSING_FAILURE: Status = Status(0x0110);

    /// Whether this is a success or warning status (the operation happened).
    pub fn is_ok(self) -> bool {
        self.0 == 0 || self.is_warning()
    }

    pub fn is_warning(self) -> bool {
        matches!(self.0, 0x0001 | 0x0107 | 0x0116) || (self.0 & 0xF000) == 0xB000
    }

    /// A failure that will fail again if retried unchanged (0xA9xx, 0xCxxx,
    /// 0x01xx/0x02xx protocol errors); the outbox sends these to dead letter.
    pub fn is_permanent_failure(self) -> bool {
        !self.is_ok() && self.0 != Status::OUT_OF_RESOURCES.0 && (self.0 & 0xFF00) != 0xA700
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        assert!(Status::SUCCESS.is_ok());
        assert!(Status(0xB000).is_ok());
        assert!(!Status::OUT_OF_RESOURCES.is_ok());
        assert!(!Status::OUT_OF_RESOURCES.is_permanent_failure());
        assert!(!Status(0xA701).is_ok() && !Status(0xA701).is_permanent_failure());
        assert!(Status::CANNOT_UNDERSTAND.is_permanent_failure());
        assert!(Status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS.is_permanent_failure());
        assert_eq!(Status(0xA700).to_string(), "0xA700");
    }
}
