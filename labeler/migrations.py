"""Schema migrations: a fresh store gets every table at once, an existing one upgrades in place.

Each migration is ``(version, function(migrator))``; append new ones to MIGRATIONS and never edit an
applied one. Functions use playhouse.migrate so they run on SQLite and PostgreSQL alike.
"""
from peewee import BooleanField
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

from labeler.db import TABLES, Lease, SchemaVersion, database


def _leases_and_suggestion_shown(migrator):
    """2: the Lease table of the labeling screen; Label.suggestion_shown (was the suggestion on screen)."""
    Lease.create_table(safe=True)
    migrate(migrator.add_column("label", "suggestion_shown", BooleanField(null=True)))


MIGRATIONS = [(2, _leases_and_suggestion_shown)]


def current_version():
    """The highest applied migration, 0 for a store with no schema table."""
    if not SchemaVersion.table_exists():
        return 0
    return SchemaVersion.select().order_by(SchemaVersion.version.desc()).scalar() or 0


def latest_version():
    return max((version for version, _ in MIGRATIONS), default=1)


def _migrator():
    engine = database.obj
    if type(engine).__name__.startswith("Postgres"):
        return PostgresqlMigrator(engine)
    return SqliteMigrator(engine)


def upgrade():
    """Create or upgrade the schema; returns the list of versions applied."""
    with database.atomic():
        version = current_version()
        if version == 0:
            database.create_tables([SchemaVersion, *TABLES])
            versions = [1] + [v for v, _ in MIGRATIONS if v > 1]
            SchemaVersion.insert_many([(v,) for v in versions], fields=[SchemaVersion.version]).execute()
            return versions
        applied = []
        migrator = _migrator()
        for number, migration in sorted(MIGRATIONS, key=lambda pair: pair[0]):
            if number > version:
                migration(migrator)
                SchemaVersion.create(version=number)
                applied.append(number)
        return applied
