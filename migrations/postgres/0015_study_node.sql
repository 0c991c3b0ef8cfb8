-- The node that received a study's latest instance. Should that node die
-- (or restart) while the study waits, the study waits a whole quiet
-- period again from when that became known: its sender may resend what
-- the death cut off, to another node.
ALTER TABLE studies ADD COLUMN last_node TEXT;
