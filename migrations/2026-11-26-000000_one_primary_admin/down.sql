-- Without the index, nothing but the application stops a second primary admin.
DROP INDEX users_one_primary_admin;
