-- The periodic purge deletes ended sessions, a small batch at a time, from every instance:
-- `expires_at <= now OR revoked_at < now - grace`. Without these indexes each batch scans the
-- whole table, which grows with the traffic; with them Postgres combines two index range scans
-- and touches only the ended rows. The partial index holds revoked sessions alone (live ones
-- have no `revoked_at`). The price: a rotation moves `expires_at`, so it also updates this
-- index (one more index entry per refresh). Built without CONCURRENTLY, which cannot run in the
-- migration's transaction: session writes wait while it builds (seconds per million rows).
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
