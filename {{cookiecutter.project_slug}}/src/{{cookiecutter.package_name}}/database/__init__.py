"""Database access: engines created once per process, schema, migrations, demo data."""
