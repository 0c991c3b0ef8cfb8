-- The AE title each instance was sent to (one daemon may answer to several,
-- `[[dicom.ae_titles]]`, each with its own sources, rules and models).
-- NULL for instances received before: they were sent to `[dicom] ae_title`.
ALTER TABLE instances ADD COLUMN called_ae_title TEXT;
