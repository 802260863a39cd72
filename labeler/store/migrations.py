"""Schema migrations: a fresh store gets every table at once, an existing one upgrades in place.

Each migration is ``(version, function(migrator))``; append new ones to MIGRATIONS and never edit an
applied one. Functions use playhouse.migrate so they run on SQLite and PostgreSQL alike.
"""
import numpy as np
from peewee import (BooleanField, Case, CharField, DateTimeField, FloatField, ForeignKeyField, IntegerField,
                    PostgresqlDatabase, Value, fn)
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

from labeler.store.db import (ROLE_CHECK, TABLES, ApiToken, AuditEntry, Dataset, FeatureStats, GeneratedSamples,
                              GenerativeArtifacts, Item, JSONField, Label, Lease, LoginFailure, ModelVersion, PoolCopy,
                              PrequentialScore, ReviewRequest, SchemaVersion, SequenceArtifacts, Standing,
                              StandingCount, User, database, within)

AMOUNT_BATCH = 5000  # items read and written at a time when migration 13 fills Item.amount


def _leases_and_suggestion_shown(migrator):
    """2: the Lease table of the labeling screen; Label.suggestion_shown (was the suggestion on screen)."""
    Lease.create_table(safe=True)
    migrate(migrator.add_column("label", "suggestion_shown", BooleanField(null=True)))


def _model_version_files(migrator):
    """3: ModelVersion.scores_path, holdout_path, digests, gate and served_at (stored pool scores and the gate).

    Adds only the columns a store lacks, so it is safe to run again.
    """
    table = ModelVersion._meta.table_name
    present = {column.name for column in database.get_columns(table)}
    wanted = {"scores_path": CharField(null=True, max_length=500), "holdout_path": CharField(null=True, max_length=500),
              "digests": JSONField(null=True), "gate": JSONField(null=True), "served_at": DateTimeField(null=True)}
    migrate(*[migrator.add_column(table, name, field) for name, field in wanted.items() if name not in present])


def _generative_artifacts(migrator):
    """4: the GenerativeArtifacts table (the autoencoder's stored outputs per dataset, labeler.worker.autoencoder)."""
    GenerativeArtifacts.create_table(safe=True)


def _label_source_kind_index(migrator):
    """5: an index on Label (source, kind, id), so that counting a dataset's human labels walks the labels
    instead of every item of the dataset (30 ms on the full credit-card file, after every decision)."""
    present = {index.name for index in database.get_indexes("label")}
    if "label_source_kind_id" not in present:
        migrate(migrator.add_index("label", ("source", "kind", "id"), False))


def _feature_stats_table(migrator):
    """6: the FeatureStats table (the worker's per-dataset feature statistics), taking the cache that lived in
    Dataset.settings['feature_stats'] out of the settings."""
    FeatureStats.create_table(safe=True)
    for dataset in Dataset.select():
        if "feature_stats" in (dataset.settings or {}):
            settings = {key: value for key, value in dataset.settings.items() if key != "feature_stats"}
            Dataset.update(settings=settings).where(Dataset.id == dataset.id).execute()


def _session_revocation_and_login_failures(migrator):
    """7: User.session_version and User.disabled (sessions revoked on logout, password change and disabling),
    and the LoginFailure table (login throttling per user name and per address). Adds only what is missing."""
    table = User._meta.table_name
    present = {column.name for column in database.get_columns(table)}
    wanted = {"session_version": IntegerField(default=0), "disabled": BooleanField(default=False)}
    migrate(*[migrator.add_column(table, name, field) for name, field in wanted.items() if name not in present])
    LoginFailure.create_table(safe=True)


def _transaction_roles(migrator):
    """8: Dataset.roles (column roles of raw transactions), Item.event_time, Item.entity and Item.second_entity
    with indexes on (dataset, entity or second_entity, event_time) for a card's and a merchant's history, Label.bulk_of (one decision for a run of a card's
    transactions). Adds only what is missing."""
    present = {column.name for column in database.get_columns("dataset")}
    if "roles" not in present:
        migrate(migrator.add_column("dataset", "roles", JSONField(null=True)))
    present = {column.name for column in database.get_columns("item")}
    wanted = {"event_time": FloatField(null=True), "entity": CharField(null=True, max_length=200),
              "second_entity": CharField(null=True, max_length=200)}
    migrate(*[migrator.add_column("item", name, field) for name, field in wanted.items() if name not in present])
    indexes = {index.name for index in database.get_indexes("item")}
    for column in ("entity", "second_entity"):
        if f"item_dataset_id_{column}_event_time" not in indexes:
            migrate(migrator.add_index("item", ("dataset_id", column, "event_time"), False))
    if "bulk_of_id" not in {column.name for column in database.get_columns("label")}:
        migrate(migrator.add_column("label", "bulk_of_id",
                                    ForeignKeyField(Label, field=Label.id, null=True, on_delete="CASCADE")))


def _sequence_artifacts(migrator):
    """9: the SequenceArtifacts table (the sequence autoencoder's stored outputs per dataset,
    labeler.worker.sequences)."""
    SequenceArtifacts.create_table(safe=True)


def _generated_samples(migrator):
    """10: the GeneratedSamples table (the VAE's samples for the admin's generated-samples page,
    labeler.worker.generated)."""
    GeneratedSamples.create_table(safe=True)


def _reviewer_role_and_audit(migrator):
    """11: the 'reviewer' role (User.role's CHECK widened), Label.strategy and Label.model_version (what put the
    item on screen), the ReviewRequest table (fraud labels sampled for review) and the AuditEntry table (who
    changed settings, exported, adjudicated). Adds only what is missing."""
    present = {column.name for column in database.get_columns("label")}
    wanted = {"strategy": CharField(null=True, max_length=40), "model_version": IntegerField(null=True)}
    migrate(*[migrator.add_column("label", name, field) for name, field in wanted.items() if name not in present])
    if isinstance(database.obj, PostgresqlDatabase):
        database.execute_sql('ALTER TABLE "user" DROP CONSTRAINT IF EXISTS "user_role_check"')
        database.execute_sql(f'ALTER TABLE "user" ADD CONSTRAINT "user_role_check" {ROLE_CHECK}')
    else:
        _widen_sqlite_role_check()
    ReviewRequest.create_table(safe=True)
    AuditEntry.create_table(safe=True)


def _widen_sqlite_role_check():
    """Rebuild SQLite's user table with the new role CHECK (SQLite cannot alter a constraint): create the new
    table, copy the rows, drop the old one, rename. Foreign keys are off for the connection meanwhile (the
    caller's transaction must not have started yet: upgrade() sees to it), so that dropping the referenced
    table neither fails nor cascades; the check of every reference afterwards must find nothing."""
    table_sql = database.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'user'").fetchone()[0]
    if "'reviewer'" in table_sql:
        return
    indexes = [row[0] for row in database.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'user' AND sql IS NOT NULL")]
    start = table_sql.index("CHECK (role IN")
    end = table_sql.index(")", table_sql.index(")", start) + 1) + 1
    new_sql = table_sql[:start] + ROLE_CHECK + table_sql[end:]
    new_sql = new_sql.replace('CREATE TABLE "user"', 'CREATE TABLE "user_rebuilt"', 1)
    database.execute_sql(new_sql)
    database.execute_sql('INSERT INTO "user_rebuilt" SELECT * FROM "user"')
    database.execute_sql('DROP TABLE "user"')
    database.execute_sql('ALTER TABLE "user_rebuilt" RENAME TO "user"')
    for index_sql in indexes:
        database.execute_sql(index_sql)
    problems = database.execute_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(f"rebuilding the user table left broken references: {problems[:3]}")


def _api_tokens(migrator):
    """12: the ApiToken table (the JSON API's per-user tokens, kept hashed)."""
    ApiToken.create_table(safe=True)


def _item_amount_and_table_indexes(migrator):
    """13: Item.amount (the dataset's amount column, filled for stored items from their rows) and indexes on
    (dataset, amount, id) and (dataset, event_time, id), so that the item table's pages sorted or filtered by
    amount or time read an index range instead of every item. Adds only what is missing."""
    if "amount" not in {column.name for column in database.get_columns("item")}:
        migrate(migrator.add_column("item", "amount", FloatField(null=True)))
    indexes = {index.name for index in database.get_indexes("item")}
    for column in ("amount", "event_time"):
        if f"item_dataset_id_{column}_id" not in indexes:
            migrate(migrator.add_index("item", ("dataset_id", column, "id"), False))
    for dataset in Dataset.select():
        _fill_amounts(dataset)


def _fill_amounts(dataset):
    """Write Item.amount of ``dataset``'s items from their stored rows (NaN as NULL), in batches by id."""
    column = dataset.amount_column
    if column is None:
        return
    position = [c for c in dataset.columns if c not in dataset.text_columns].index(column)
    width = len(dataset.columns) - len(dataset.text_columns)
    cursor, last = database.cursor(), 0
    while True:
        rows = list(Item.select(Item.id, Item.numbers).where((Item.dataset == dataset) & (Item.id > last))
                    .order_by(Item.id).limit(AMOUNT_BATCH).tuples())
        if not rows:
            return
        numbers = np.frombuffer(b"".join(bytes(blob) for _, blob in rows), dtype=np.float64).reshape(len(rows), width)
        amounts = [None if value != value else value for value in numbers[:, position].tolist()]
        cursor.executemany(f'UPDATE "item" SET "amount" = {database.param} WHERE "id" = {database.param}',
                           list(zip(amounts, (item_id for item_id, _ in rows))))
        last = rows[-1][0]


def _pool_copy(migrator):
    """14: the PoolCopy table (the columnar copy of each dataset's pool, labeler.store.pool)."""
    PoolCopy.create_table(safe=True)


def _standing_table(migrator):
    """15: the Standing and StandingCount tables (the human label that stands per item and their counts, kept by
    Standing.refresh with every human or review label write), filled from the label log by the rule's own
    queries (Label.effective, Label.disputed), one INSERT ... SELECT per dataset; and Label's indexes on (item or
    annotator, source, kind, id), which take the place of the plain ones on item and annotator (SQLite read an
    item's or an analyst's labels through (source, kind, id), every human label). Adds only what is missing."""
    Standing.create_table(safe=True)
    StandingCount.create_table(safe=True)
    present = {index.name for index in database.get_indexes("label")}
    for column in ("annotator_id", "item_id"):  # the item's last (Label's Meta says why)
        if f"label_{column}_source_kind_id" not in present:
            migrate(migrator.add_index("label", (column, "source", "kind", "id"), False))
        database.execute_sql(f'DROP INDEX IF EXISTS "label_{column}"')
    for dataset in Dataset.select():
        fill_standing(dataset)


def fill_standing(dataset):
    """Rewrite ``dataset``'s Standing rows from the label log (Label.effective's rule)."""
    Standing.delete().where(Standing.dataset == dataset).execute()
    answered = Label.select(Label.item).where(within(Label.id, Label.answers(dataset)))
    state = Case(Label.source, [("review", "adjudicated")], "agreed")
    standing = Label.effective(dataset).select(Label.item, Value(dataset.id), state, Label.value, Label.id,
                                               within(Label.item, answered))
    disputed = Item.select(Item.id, Value(dataset.id), Value("disputed"), Value(True)).where(
        within(Item.id, Label.disputed(dataset)))
    fields = [Standing.item, Standing.dataset, Standing.state, Standing.value, Standing.label, Standing.answered]
    Standing.insert_from(standing, fields).execute()
    Standing.insert_from(disputed, [*fields[:3], Standing.answered]).execute()
    StandingCount.delete().where(StandingCount.dataset == dataset).execute()
    value = fn.COALESCE(Standing.value, "")  # a disputed item's is null
    counts = (Standing.select(Standing.dataset, Standing.state, value, fn.COUNT(Standing.item))
              .where(Standing.dataset == dataset).group_by(Standing.dataset, Standing.state, Standing.value))
    StandingCount.insert_from(counts, [StandingCount.dataset, StandingCount.state, StandingCount.value,
                                       StandingCount.items]).execute()


def _make_partial(indexes, name, columns, present):
    """Rebuild Item's index ``name`` on ``columns`` as partial, WHERE ``present`` IS NOT NULL, unless ``indexes``
    ({name: SQL} of Item's indexes) shows it partial already."""
    if "WHERE" in indexes.get(name, "").upper():
        return
    database.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    listed = ", ".join(f'"{column}"' for column in columns)
    database.execute_sql(f'CREATE INDEX "{name}" ON "item" ({listed}) WHERE ("{present}" IS NOT NULL)')


def _partial_entity_indexes(migrator):
    """16: Item's indexes on (dataset_id, entity or second_entity, event_time) become partial, WHERE the entity IS
    NOT NULL: items without one (every item of a dataset with no entity column) cost an import no index entry,
    and every query through them asks for one entity. Changes only what is not partial yet. (The plain index on
    dataset_id stays: SQLite finds a dataset's items by id through it, (dataset_id, rowid).)"""
    indexes = {index.name: index.sql or "" for index in database.get_indexes("item")}
    for column in ("entity", "second_entity"):
        _make_partial(indexes, f"item_dataset_id_{column}_event_time", ("dataset_id", column, "event_time"), column)


def _partial_time_index(migrator):
    """17: Item's index on (dataset_id, event_time, id) becomes partial, WHERE event_time IS NOT NULL: the items of
    a dataset without a time column cost an import no index entry. Changes it only when it is not partial yet."""
    indexes = {index.name: index.sql or "" for index in database.get_indexes("item")}
    _make_partial(indexes, "item_dataset_id_event_time_id", ("dataset_id", "event_time", "id"), "event_time")


def _prequential_record(migrator):
    """18: ModelVersion.counterpart_path and the PrequentialScore table (models.prequential's record). Adds only
    what is missing."""
    PrequentialScore.create_table(safe=True)
    table = ModelVersion._meta.table_name
    if "counterpart_path" not in {column.name for column in database.get_columns(table)}:
        migrate(migrator.add_column(table, "counterpart_path", CharField(null=True, max_length=500)))


def _committee_scores(migrator):
    """19: ModelVersion.committee_path (the committee's disagreement over the pool, models.committee). Adds it
    only when missing."""
    table = ModelVersion._meta.table_name
    if "committee_path" not in {column.name for column in database.get_columns(table)}:
        migrate(migrator.add_column(table, "committee_path", CharField(null=True, max_length=500)))


MIGRATIONS = [(2, _leases_and_suggestion_shown), (3, _model_version_files), (4, _generative_artifacts),
              (5, _label_source_kind_index), (6, _feature_stats_table), (7, _session_revocation_and_login_failures),
              (8, _transaction_roles), (9, _sequence_artifacts), (10, _generated_samples),
              (11, _reviewer_role_and_audit), (12, _api_tokens), (13, _item_amount_and_table_indexes),
              (14, _pool_copy), (15, _standing_table), (16, _partial_entity_indexes),
              (17, _partial_time_index), (18, _prequential_record), (19, _committee_scores)]


def current_version():
    """The highest applied migration, 0 for a store with no schema table."""
    if not SchemaVersion.table_exists():
        return 0
    return SchemaVersion.select().order_by(SchemaVersion.version.desc()).scalar() or 0


def _migrator():
    engine = database.obj
    if isinstance(engine, PostgresqlDatabase):
        return PostgresqlMigrator(engine)
    return SqliteMigrator(engine)


def upgrade():
    """Create or upgrade the schema; returns the list of versions applied. On SQLite, foreign keys are off for
    the connection while it runs (migration 11 rebuilds a referenced table; PRAGMA foreign_keys is ignored
    inside a transaction, so it is set before)."""
    sqlite = not isinstance(database.obj, PostgresqlDatabase)
    if sqlite:
        database.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        return _upgrade()
    finally:
        if sqlite:
            database.execute_sql("PRAGMA foreign_keys = ON")


def _upgrade():
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
