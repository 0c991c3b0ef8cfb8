-- The images a model could not read in a job (undecodable, unsupported
-- transfer syntax, a decoder's panic), with the reason: the job goes on
-- with the study's other images, and an admin can see which one failed.
CREATE TABLE skipped_images (
    job_id               INTEGER NOT NULL REFERENCES jobs (id),
    model                TEXT NOT NULL,
    model_version        TEXT NOT NULL,
    sop_instance_uid     TEXT NOT NULL,
    error                TEXT NOT NULL,
    PRIMARY KEY (job_id, model, model_version, sop_instance_uid)
) STRICT;
