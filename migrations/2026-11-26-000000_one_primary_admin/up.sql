-- At most one primary admin can ever exist. Every instance that starts while there is none
-- tries to create it from its configuration, so a read-then-insert would let two instances
-- starting together both succeed. This index makes the database decide: all marked rows share
-- the one key `true`, so a second marked row is a unique violation and the loser of the race
-- inserts nothing. Being partial, it holds just that one row and costs nothing for other users.
CREATE UNIQUE INDEX users_one_primary_admin ON users ((true)) WHERE is_primary_admin;
