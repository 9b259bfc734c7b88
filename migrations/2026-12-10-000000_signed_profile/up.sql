-- A rotation signs the successor's access token with the user's email, role slug and superuser
-- flag as it reads them; a repeat inside the grace window must sign the very same token, even
-- when the user changed in between. So the rotation keeps those three values beside its sealed
-- successor pair, and they are cleared with it (by a revocation, or by the purge once the
-- window is over): only sessions rotated in the last minute or so hold them.
--
-- `signed_for` is the refresh token the rotation issued: the profile belongs to that rotation
-- only. An older authd running beside this one during a deploy rotates without writing these
-- columns; its rotation moves `current_refresh_jti` on, and the profile of the rotation before
-- it no longer counts (a repeat then signs for the user as stored, as before).
--
-- Nullable, without a default: adding them rewrites no row. The check is NOT VALID because
-- every existing row passes it (the new columns are all NULL), and validating would scan the
-- table under an exclusive lock while instances serve; Postgres enforces it on every write
-- all the same.
ALTER TABLE sessions
    ADD COLUMN signed_for uuid,
    ADD COLUMN signed_email text,
    ADD COLUMN signed_role text,
    ADD COLUMN signed_superuser boolean,
    ADD CONSTRAINT sessions_signed_profile_whole CHECK (
        (signed_for IS NULL) = (signed_email IS NULL)
        AND (signed_email IS NULL) = (signed_role IS NULL)
        AND (signed_role IS NULL) = (signed_superuser IS NULL)
    ) NOT VALID;
