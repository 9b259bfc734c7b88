-- The initial schema. Postgres is the source of truth for users, roles and sessions (with their
-- refresh-token rotation state); Redis only ever caches what is here.

-- Roles are labels applications read from the `role` claim. The slug never changes and is
-- unique, so that instances racing to create the default role end up with one row.
CREATE TABLE roles (
    id          uuid        PRIMARY KEY,
    slug        text        NOT NULL,
    name        text        NOT NULL,
    description text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT roles_slug_key UNIQUE (slug)
);

-- The email is kept as the user typed it; `email_normalized` is the application's Unicode
-- lowercase form, and this constraint (not a read-then-insert) decides that an email is taken.
-- A role cannot be deleted while users hold it; `is_primary_admin` marks the bootstrap account
-- (it stays primary when its email changes).
CREATE TABLE users (
    id               uuid        PRIMARY KEY,
    email            text        NOT NULL,
    email_normalized text        NOT NULL,
    name             text,
    password_hash    text        NOT NULL,
    is_active        boolean     NOT NULL,
    is_superuser     boolean     NOT NULL,
    is_verified      boolean     NOT NULL,
    is_primary_admin boolean     NOT NULL DEFAULT false,
    role_id          uuid        NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT users_email_normalized_key UNIQUE (email_normalized)
);

-- Deleting a role must check for holders without scanning every user.
CREATE INDEX users_role_id_idx ON users (role_id);

-- One row per login. `current_refresh_jti` is the only refresh token that may be exchanged: a
-- refresh is a compare-and-set on it. `previous_refresh_jti`, `rotated_at` and the sealed
-- successor pair serve repeats of the last exchange inside the grace window. Sessions go with
-- their user.
CREATE TABLE sessions (
    id                   uuid        PRIMARY KEY,
    user_id              uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at           timestamptz NOT NULL,
    last_used_at         timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,
    user_agent           text,
    ip                   text,
    revoked_at           timestamptz,
    current_refresh_jti  uuid        NOT NULL,
    previous_refresh_jti uuid,
    rotated_at           timestamptz,
    sealed_successor     text
);

-- Listing and revoking a user's sessions (and the cascade from users) look sessions up by user.
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
