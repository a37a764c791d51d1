"""PostgreSQL access: connections, migrations and every SQL statement autosync runs."""
