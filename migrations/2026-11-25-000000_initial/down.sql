-- Undoes the initial schema, dependents first (sessions reference users, users reference roles).
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE roles;
