-- The periodic purge also clears the sealed successor pair of sessions rotated longer ago than
-- the grace window (`sealed_successor IS NOT NULL AND rotated_at < now - grace`), a small batch
-- at a time, from every instance. Only sessions rotated in the last minute or so still hold a
-- pair, so this partial index stays tiny while the table grows, and each batch reads just those
-- rows instead of scanning the table. Rows that had a pair before this migration (and might
-- never be written again) are in it too, and the first purge clears them. A rotation writes the
-- pair and so adds an entry; the clearing removes it.
CREATE INDEX sessions_sealed_rotated_at_idx ON sessions (rotated_at)
    WHERE sealed_successor IS NOT NULL;
