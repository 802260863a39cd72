"""The reviewer role, the standing-label rule and the adjudication queue (issue 17)."""
from labeler.data.users import create_user
from labeler.store.db import ROLE_CHECK, Label, SchemaVersion, User, database, open_database
from labeler.store.migrations import upgrade
from tests.conftest import PASSWORD


def test_migration_11_widens_an_old_stores_role_check_and_keeps_every_reference(tmp_path):
    open_database(str(tmp_path / "old.db"))
    with database.connection_context():
        upgrade()
        ana = create_user("ana", PASSWORD, "analyst")
        # the store as schema 10 wrote it: the role CHECK without 'reviewer'
        database.execute_sql("PRAGMA foreign_keys = OFF")
        table_sql = database.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'user'").fetchone()[0]
        old_sql = table_sql.replace(ROLE_CHECK, "CHECK (role IN ('admin', 'analyst'))")
        assert old_sql != table_sql
        database.execute_sql(old_sql.replace('"user"', '"user_old"', 1))
        database.execute_sql('INSERT INTO "user_old" SELECT * FROM "user"')
        database.execute_sql('DROP TABLE "user"')
        database.execute_sql('ALTER TABLE "user_old" RENAME TO "user"')
        database.execute_sql('CREATE UNIQUE INDEX "user_name" ON "user" ("name")')
        database.execute_sql("PRAGMA foreign_keys = ON")
        SchemaVersion.delete().where(SchemaVersion.version >= 11).execute()
        assert upgrade() == [11]
        reviewer = create_user("rita", PASSWORD, "reviewer")
        assert User.get_by_id(ana.id).name == "ana" and reviewer.can_review
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        indexes = {row[1] for row in database.execute_sql("PRAGMA index_list('user')")}
        assert "user_name" in indexes
        assert upgrade() == []
