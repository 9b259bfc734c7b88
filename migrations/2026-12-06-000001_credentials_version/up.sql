-- A login checks the password against one version of the user's credentials and opens its
-- session only if they are still at that version (in the same statement as the insert), so a
-- password change, a password set by an admin, a deactivation or a revoke-all that overlaps a
-- login never leaves a session behind. Each of those bumps it.
ALTER TABLE users ADD COLUMN credentials_version bigint NOT NULL DEFAULT 0;
