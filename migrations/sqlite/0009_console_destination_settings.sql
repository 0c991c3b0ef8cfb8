-- What the console sets of a destination beyond its AE title, host and
-- port, as JSON: its kind (dicom or hl7) and, for HL7, the MSH-3..6 names;
-- the least priority it receives. NULL: a DICOM destination, all results.
-- (FHIR and webhook destinations read secrets from files: the
-- configuration file sets them, never the console.)
ALTER TABLE peers ADD COLUMN settings TEXT;
