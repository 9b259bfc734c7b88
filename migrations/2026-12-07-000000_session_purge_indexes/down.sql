-- The purge still works without them, scanning the table.
DROP INDEX sessions_revoked_at_idx;
DROP INDEX sessions_expires_at_idx;
