-- The clearing still works without it, scanning the table.
DROP INDEX sessions_sealed_rotated_at_idx;
