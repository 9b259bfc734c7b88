-- A rotation signs the successor's access token with the user's email, role slug and superuser
-- flag as it reads them; a repeat inside the grace window must sign the very same token, even
-- when the user changed in between. So the rotation keeps those three values beside its sealed
-- successor pair, and they are cleared with it (by a revocation, or by the purge once the
-- window is over): only sessions rotated in the last minute or so hold them.
--
-- Nullable, without a default: adding them rewrites no row. Rows rotated before this
-- migration have the pair without the profile; a repeat of those signs for the user as stored.
ALTER TABLE sessions
    ADD COLUMN signed_email text,
    ADD COLUMN signed_role text,
    ADD COLUMN signed_superuser boolean,
    ADD CONSTRAINT sessions_signed_profile_whole CHECK (
        (signed_email IS NULL) = (signed_role IS NULL)
        AND (signed_role IS NULL) = (signed_superuser IS NULL)
    );
