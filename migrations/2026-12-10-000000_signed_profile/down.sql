ALTER TABLE sessions
    DROP CONSTRAINT sessions_signed_profile_whole,
    DROP COLUMN signed_superuser,
    DROP COLUMN signed_role,
    DROP COLUMN signed_email,
    DROP COLUMN signed_for;
