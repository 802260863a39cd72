"""The label store on a real SQLite file: pragmas, schema versions, the label log's undo, uniqueness."""
import numpy as np
import pytest
from peewee import IntegrityError

from labeler.data.datasets import label_counts
from labeler.store.db import (TABLES, Dataset, FeatureStats, Item, Label, LoginFailure, ModelVersion,
                              PrequentialScore, SchemaVersion, Standing, User, database, open_database)
from labeler.store.migrations import MIGRATIONS, current_version, upgrade
from tests.test_import import store_snapshot


def _dataset(name="d"):
    return Dataset.create(name=name, columns=["a"], feature_columns=["a"], labels=["genuine", "fraud"])


def _item(dataset, external_id, row_number):
    blob = np.array([float(row_number)]).tobytes()
    return Item.create(dataset=dataset, external_id=external_id, row_number=row_number, numbers=blob,
                       features=np.array([row_number], dtype=np.float32).tobytes())


def test_sqlite_runs_in_wal_mode_with_foreign_keys(app):
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10000
    with pytest.raises(IntegrityError):
        with database.atomic():
            _item(Dataset(id=999), "x", 0)


def test_deleting_a_dataset_cascades_to_its_items_and_labels(app, analyst):
    dataset = _dataset()
    item = _item(dataset, "x", 0)
    Label.create(item=item, value="fraud", annotator=analyst)
    dataset.delete_instance()
    assert (Item.select().count(), Label.select().count()) == (0, 0)


def test_fresh_store_is_at_the_latest_schema_version(app):
    assert current_version() == max(v for v, _ in MIGRATIONS) == 19
    applied = [row.version for row in SchemaVersion.select().order_by(SchemaVersion.version)]
    assert applied == [1, *sorted(v for v, _ in MIGRATIONS)]
    tables = set(database.get_tables())
    assert {model._meta.table_name for model in [SchemaVersion, *TABLES]} <= tables


def test_upgrade_of_an_up_to_date_store_applies_nothing(app):
    before = store_snapshot()
    assert upgrade() == []
    assert store_snapshot() == before


def test_migration_5_adds_the_label_index_to_an_older_store(tmp_path):
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        database.execute_sql('DROP INDEX "label_source_kind_id"')
        database.drop_tables([FeatureStats])  # a version-4 store: neither the index nor migration 6's table
        SchemaVersion.delete().where(SchemaVersion.version >= 5).execute()
        assert upgrade() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]  # 7 on find their columns and tables
        assert "label_source_kind_id" in {index.name for index in database.get_indexes("label")}


def test_migration_6_moves_the_feature_statistics_out_of_the_settings(tmp_path):
    """A version-5 store kept the screen's feature statistics in Dataset.settings; version 6 keeps them in the
    FeatureStats table (written by the worker's refill), so the upgrade drops the old cache from the settings."""
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        database.drop_tables([FeatureStats])
        SchemaVersion.delete().where(SchemaVersion.version >= 6).execute()
        kept = {"labeling": {"overlap_share": 0.2}, "truth_map": {"1": "fraud", "0": "genuine"}, "retrain_every": 20}
        old = Dataset.create(name="old", columns=["a"], feature_columns=["a"], labels=["genuine", "fraud"],
                             settings={**kept, "feature_stats": {"rows": 3, "mean": [1.0], "std": [0.5]}})
        plain = Dataset.create(name="plain", columns=["a"], feature_columns=["a"], labels=["genuine", "fraud"],
                               settings=dict(kept))
        bare = Dataset.create(name="bare", columns=["a"], feature_columns=["a"], labels=["genuine", "fraud"],
                              settings={})
        assert current_version() == 5 and not FeatureStats.table_exists()
        assert upgrade() == [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        assert FeatureStats.table_exists() and FeatureStats.select().count() == 0  # the worker's refill fills it
        assert Dataset.get_by_id(old.id).settings == kept  # only the statistics went
        assert Dataset.get_by_id(plain.id).settings == kept
        assert Dataset.get_by_id(bare.id).settings == {}
        assert current_version() == 19 and upgrade() == []


def test_migration_7_adds_session_versions_and_the_login_failures_to_an_older_store(tmp_path):
    """A version-6 store's users had neither a session version nor a disabled flag, and there was no table of
    failed logins; the upgrade adds them, keeping the users (enabled, at version 0)."""
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        database.drop_tables([LoginFailure])
        database.execute_sql('ALTER TABLE "user" DROP COLUMN "session_version"')
        database.execute_sql('ALTER TABLE "user" DROP COLUMN "disabled"')
        database.execute_sql("INSERT INTO \"user\" (name, password_hash, role, created_at) "
                             "VALUES ('old', 'hash', 'analyst', '2024-01-01 00:00:00')")
        SchemaVersion.delete().where(SchemaVersion.version >= 7).execute()
        assert current_version() == 6 and not LoginFailure.table_exists()
        assert upgrade() == [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        assert {"session_version", "disabled"} <= {column.name for column in database.get_columns("user")}
        old = User.get(User.name == "old")
        assert (old.session_version, old.disabled, old.is_active, old.get_id()) == (0, False, True, f"{old.id}:0")
        assert LoginFailure.table_exists() and LoginFailure.select().count() == 0
        assert current_version() == 19 and upgrade() == []


def test_migration_8_adds_the_transaction_roles_and_an_old_dataset_still_appends(tmp_path):
    """A version-7 store had no column roles, item times or entities; after the upgrade its datasets (roles None)
    keep their numeric features and take appends as before."""
    from labeler.data.importer import import_file
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        database.execute_sql('DROP INDEX "item_dataset_id_entity_event_time"')
        database.execute_sql('DROP INDEX "item_dataset_id_second_entity_event_time"')
        database.execute_sql('DROP INDEX "item_dataset_id_event_time_id"')  # schema 13's indexes and column
        database.execute_sql('DROP INDEX "item_dataset_id_amount_id"')
        for table, column in (("dataset", "roles"), ("item", "event_time"), ("item", "entity"), ("item", "second_entity"),
                              ("item", "amount")):
            database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        # SQLite drops no column with a foreign key: the version-7 label table is made again without it
        schema = database.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'label'").fetchone()[0]
        old_schema = (schema.replace(', "bulk_of_id" INTEGER', "")
                      .replace(', FOREIGN KEY ("bulk_of_id") REFERENCES "label" ("id") ON DELETE CASCADE', ""))
        assert "bulk_of" not in old_schema
        database.execute_sql('DROP TABLE "label"')
        database.execute_sql(old_schema)
        database.execute_sql("INSERT INTO dataset (name, columns, text_columns, feature_columns, labels, id_column, "
                             "settings, created_at) VALUES ('old', '[\"a\", \"b\"]', '[]', '[\"a\", \"b\"]', "
                             "'[\"genuine\", \"fraud\"]', 'tx', '{}', '2024-01-01 00:00:00')")
        SchemaVersion.delete().where(SchemaVersion.version >= 8).execute()
        assert upgrade() == [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        assert {"event_time", "entity"} <= {column.name for column in database.get_columns("item")}
        assert "item_dataset_id_entity_event_time" in {index.name for index in database.get_indexes("item")}
        assert "bulk_of_id" in {column.name for column in database.get_columns("label")}
        old = Dataset.get(Dataset.name == "old")
        assert old.roles is None and old.file_features == ["a", "b"]
        (tmp_path / "more.csv").write_text("tx,a,b\nT1,1.5,2\nT2,3,4\n")
        assert import_file(str(tmp_path / "more.csv"), "old").rows_added == 2
        assert [item.feature_vector.tolist() for item in old.items().order_by(Item.row_number)] == [[1.5, 2.0],
                                                                                                    [3.0, 4.0]]
        assert current_version() == 19 and upgrade() == []


def test_migration_9_adds_the_sequence_artifacts_table(tmp_path):
    from labeler.store.db import SequenceArtifacts
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        database.drop_tables([SequenceArtifacts])
        SchemaVersion.delete().where(SchemaVersion.version >= 9).execute()
        assert current_version() == 8 and not SequenceArtifacts.table_exists()
        assert upgrade() == [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        assert SequenceArtifacts.table_exists() and current_version() == 19 and upgrade() == []


def test_migration_10_adds_the_generated_samples_table(tmp_path):
    from labeler.store.db import GeneratedSamples
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        dataset = _dataset()
        database.drop_tables([GeneratedSamples])
        SchemaVersion.delete().where(SchemaVersion.version >= 10).execute()
        assert current_version() == 9 and not GeneratedSamples.table_exists()
        assert upgrade() == [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        assert GeneratedSamples.table_exists() and current_version() == 19 and upgrade() == []
        GeneratedSamples.create(dataset=dataset, grid_path="g", generated_path="s", real_path="r", real_ids_path="i",
                                pool_rows=1, fit_rows=1, grid_steps=10, latent_dims=[0, 1], device="CPU", seconds=1.0)
        dataset.delete_instance()  # the dataset's row goes with it
        assert GeneratedSamples.select().count() == 0


def test_migration_16_makes_the_entity_indexes_partial(tmp_path):
    """A version-15 store had full indexes on (dataset_id, entity or second_entity, event_time); the upgrade makes
    them partial (WHERE the entity IS NOT NULL), as a new store's, and a card's history still reads its index."""
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        dataset = _dataset()
        for column in ("entity", "second_entity"):
            database.execute_sql(f'DROP INDEX "item_dataset_id_{column}_event_time"')
            database.execute_sql(f'CREATE INDEX "item_dataset_id_{column}_event_time" ON "item" '
                                 f'("dataset_id", "{column}", "event_time")')
        SchemaVersion.delete().where(SchemaVersion.version >= 16).execute()
        assert current_version() == 15 and upgrade() == [16, 17, 18, 19]  # 17 finds its index partial already
        indexes = {index.name: index.sql for index in database.get_indexes("item")}
        for column in ("entity", "second_entity"):
            assert indexes[f"item_dataset_id_{column}_event_time"].endswith(f'WHERE ("{column}" IS NOT NULL)')
        fresh = {query.query()[0] for query in Item._schema._create_indexes(safe=False)}  # a new store's
        assert set(indexes.values()) == fresh and current_version() == 19 and upgrade() == []
        plan = database.execute_sql(
            'EXPLAIN QUERY PLAN SELECT "id" FROM "item" WHERE "dataset_id" = ? AND "entity" = ? '
            'ORDER BY "event_time"', [dataset.id, "card"]).fetchall()
        assert "item_dataset_id_entity_event_time" in " ".join(str(row[-1]) for row in plan)


def test_migration_17_makes_the_time_index_partial(tmp_path):
    """A version-16 store had a full index on (dataset_id, event_time, id), with an entry for every item of a
    dataset without a time column; the upgrade makes it partial (WHERE event_time IS NOT NULL), as a new store's,
    and the item table's time order still reads it."""
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        dataset = _dataset()
        database.execute_sql('DROP INDEX "item_dataset_id_event_time_id"')
        database.execute_sql('CREATE INDEX "item_dataset_id_event_time_id" ON "item" ("dataset_id", "event_time", "id")')
        SchemaVersion.delete().where(SchemaVersion.version >= 17).execute()
        assert current_version() == 16 and upgrade() == [17, 18, 19]
        indexes = {index.name: index.sql for index in database.get_indexes("item")}
        assert indexes["item_dataset_id_event_time_id"].endswith('WHERE ("event_time" IS NOT NULL)')
        fresh = {query.query()[0] for query in Item._schema._create_indexes(safe=False)}  # a new store's
        assert set(indexes.values()) == fresh and current_version() == 19 and upgrade() == []
        plan = database.execute_sql(
            'EXPLAIN QUERY PLAN SELECT "id" FROM "item" WHERE "dataset_id" = ? AND "event_time" IS NOT NULL '
            'ORDER BY "event_time", "id" LIMIT 50', [dataset.id]).fetchall()
        steps = " ".join(str(row[-1]) for row in plan)
        assert "item_dataset_id_event_time_id" in steps and "TEMP B-TREE" not in steps, steps


def test_migration_18_adds_the_prequential_record(tmp_path):
    """A version-17 store has no PrequentialScore table and no ModelVersion.counterpart_path; the upgrade adds both
    and keeps the versions it had."""
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        dataset = _dataset()
        kept = ModelVersion.create(dataset=dataset, kind="blend", scores_path="/scores.npy")
        database.execute_sql('DROP TABLE "prequential_score"')
        database.execute_sql('ALTER TABLE "model_version" DROP COLUMN "counterpart_path"')
        database.execute_sql('ALTER TABLE "model_version" DROP COLUMN "committee_path"')
        SchemaVersion.delete().where(SchemaVersion.version >= 18).execute()
        assert current_version() == 17 and not PrequentialScore.table_exists()
        assert upgrade() == [18, 19] and PrequentialScore.table_exists()
        assert "counterpart_path" in {column.name for column in database.get_columns("model_version")}
        assert ModelVersion.get_by_id(kept.id).scores_path == "/scores.npy" and upgrade() == []


def test_migration_19_adds_the_committee_file_and_keeps_the_versions(tmp_path):
    """A version-18 store has no ModelVersion.committee_path; the upgrade adds it and keeps the versions it had."""
    open_database(str(tmp_path / "old.sqlite3"))
    with database.connection_context():
        upgrade()
        dataset = _dataset()
        kept = ModelVersion.create(dataset=dataset, kind="blend", scores_path="/scores.npy",
                                   counterpart_path="/counterpart.npy")
        database.execute_sql('ALTER TABLE "model_version" DROP COLUMN "committee_path"')
        SchemaVersion.delete().where(SchemaVersion.version >= 19).execute()
        assert current_version() == 18
        assert upgrade() == [19] and "committee_path" in {column.name for column in
                                                         database.get_columns("model_version")}
        version = ModelVersion.get_by_id(kept.id)
        assert (version.counterpart_path, version.committee_path) == ("/counterpart.npy", None) and upgrade() == []


def test_the_rules_query_walks_the_labels_not_the_items_of_the_dataset(app, analyst):
    """Label.effective (the rule, read by retrains and the export; the requests read Standing: test_query_plans)."""
    dataset = _dataset()
    items = [_item(dataset, f"T{n}", n) for n in range(300)]
    Label.create(item=items[3], value="fraud", annotator=analyst)
    undone = Label.create(item=items[4], value="genuine", annotator=analyst)
    Label.create(item=items[4], kind="undo", retracts=undone, annotator=analyst)
    Label.create(item=items[5], value="genuine", source="pseudo")
    Standing.refresh(item.id for item in items[3:6])
    assert label_counts(dataset) == {"fraud": 1} and label_counts(dataset, ("pseudo",)) == {"genuine": 1}

    sql, params = Label.effective(dataset).select(Label.value).sql()
    plan = [row[-1] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert any("label_source_kind_id" in step for step in plan), plan
    assert not any(step.endswith("item_dataset_id (dataset_id=?)") for step in plan), plan  # no walk of the items


def test_external_id_is_unique_per_dataset_in_the_database(app):
    first, second = _dataset("one"), _dataset("two")
    _item(first, "T1", 0)
    _item(second, "T1", 0)  # the same id in another dataset is fine
    with pytest.raises(IntegrityError):
        with database.atomic():
            _item(first, "T1", 1)
    with pytest.raises(IntegrityError):
        with database.atomic():
            _item(first, "T2", 0)  # row numbers are unique per dataset too
    assert Item.select().count() == 2


def _standing(dataset, sources=("human",)):
    return {label.item_id: label.value for label in Label.effective(dataset, sources)}


def test_effective_labels_follow_undo(app, analyst):
    dataset = _dataset()
    a, b, c, d = (_item(dataset, str(n), n) for n in range(4))
    Label.create(item=a, value="genuine", annotator=analyst)
    first_b = Label.create(item=b, value="genuine", annotator=analyst)
    second_b = Label.create(item=b, value="fraud", annotator=analyst)
    only_c = Label.create(item=c, value="fraud", annotator=analyst)
    assert _standing(dataset) == {a.id: "genuine", b.id: "fraud", c.id: "fraud"}

    Label.create(item=b, kind="undo", retracts=second_b, annotator=analyst)
    Label.create(item=c, kind="undo", retracts=only_c, annotator=analyst)
    # the retracted label no longer stands; b's earlier label stands again; c has none left
    assert _standing(dataset) == {a.id: "genuine", b.id: "genuine"}
    assert Label.effective(dataset).where(Label.item == b).get().id == first_b.id

    Label.create(item=b, kind="undo", retracts=first_b, annotator=analyst)
    assert _standing(dataset) == {a.id: "genuine"}
    Label.create(item=c, value="genuine", annotator=analyst)  # labeling again after an undo
    assert _standing(dataset) == {a.id: "genuine", c.id: "genuine"}
    assert d.id not in _standing(dataset, ("human", "pseudo", "model"))


def test_effective_labels_by_source(app, analyst):
    dataset = _dataset()
    other = _dataset("other")
    a, b = _item(dataset, "a", 0), _item(dataset, "b", 1)
    elsewhere = _item(other, "a", 0)
    Label.create(item=a, value="fraud", annotator=analyst)
    Label.create(item=b, value="genuine", source="pseudo")
    Label.create(item=elsewhere, value="fraud", annotator=analyst)
    assert _standing(dataset) == {a.id: "fraud"}
    assert _standing(dataset, ("pseudo",)) == {b.id: "genuine"}
    assert _standing(dataset, ("human", "pseudo")) == {a.id: "fraud", b.id: "genuine"}
    assert _standing(other) == {elsewhere.id: "fraud"}
