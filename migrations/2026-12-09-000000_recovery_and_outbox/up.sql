-- One-time tokens sent in links (verify the address, reset the password). Only the SHA-256 of
-- a token is stored, so a dump of this table opens nothing. A token is spent once: consuming it
-- is an UPDATE ... WHERE spent_at IS NULL, so of two concurrent confirms exactly one wins. A new
-- reset request, a password change or a completed reset spends every older reset token of the
-- account. Rows also serve the per-account email limit (how many went out in the last hour),
-- so they are purged only once expired and older than that window.
CREATE TABLE link_tokens (
    digest     bytea       PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz
);

CREATE INDEX link_tokens_user_purpose_idx ON link_tokens (user_id, purpose, created_at);
CREATE INDEX link_tokens_expires_at_idx ON link_tokens (expires_at);

-- The transactional outbox: an email is a row written in the same transaction as the change
-- that promises it (the token, the password change), so a rollback sends nothing and a commit
-- loses nothing. Every instance delivers: it claims due rows with FOR UPDATE SKIP LOCKED and
-- moves `next_attempt_at` forward by a lease, so a crash between claim and send leaves the row
-- due again once the lease is over (sent at most twice, never zero times). The link's token is
-- kept encrypted with a key derived from the server's signing key (`sealed_token`), never in
-- clear, and cleared once the row is sent or dead.
CREATE TABLE outbox (
    id              uuid        PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('verify_email', 'reset_password', 'password_changed')),
    recipient       text        NOT NULL,
    sealed_token    text,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    sent_at         timestamptz,
    dead_at         timestamptz,
    last_error      text
);

-- Claiming reads the due rows only; the partial index holds the pending ones alone.
CREATE INDEX outbox_pending_idx ON outbox (next_attempt_at)
    WHERE sent_at IS NULL AND dead_at IS NULL;
-- The retention purge deletes finished rows by age.
CREATE INDEX outbox_sent_at_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_dead_at_idx ON outbox (dead_at) WHERE dead_at IS NOT NULL;
