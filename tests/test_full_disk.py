"""A full disk (issue 13, item 7): the import command and the labeling screen say so in one line and store
nothing, and work again once space is freed. Run on a real full filesystem: a small tmpfs mounted in a user and
mount namespace of its own (tests/probe.py), where the system allows one."""
import sqlite3

import pytest
from peewee import OperationalError

from labeler.store.db import full_disk_error
from tests import probe

needs_tmpfs = pytest.mark.skipif(not probe.can_mount_tmpfs(),
                                 reason="this system lets no unprivileged process mount a tmpfs (unshare)")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baseline")
    probe.make_baseline(str(folder))
    return str(folder)


@pytest.fixture
def store_copy(baseline, tmp_path):
    probe.copy_baseline(baseline, str(tmp_path))
    return str(tmp_path)


@pytest.mark.slow  # seconds of work: the full tier runs it
@needs_tmpfs
def test_an_import_onto_a_full_disk_is_one_line_and_stores_nothing(store_copy):
    outcome = probe.full_disk_import(store_copy)
    assert outcome.code == 1 and outcome.lines == 1, outcome
    assert outcome.message.startswith("Error: the disk is full (database or disk is full; the store is ")
    assert outcome.message.endswith("nothing was changed. Free some space and run the command again.")
    assert outcome.unchanged is True
    assert "but the import after freeing space failed" not in outcome.message


@needs_tmpfs
@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_decision_on_a_full_disk_is_refused_in_one_line_and_stored_after_space_is_freed(store_copy):
    outcome = probe.full_disk_labeling(store_copy)
    assert outcome.code == 507, outcome
    assert outcome.message == ("The server's disk is full, so this was not saved (nothing saved before is lost). "
                               "Tell your admin, and try again once space is freed.")
    assert outcome.unchanged is True


def test_a_full_disk_is_found_behind_the_failed_rollback_it_causes():
    """SQLite rolls back by itself on SQLITE_FULL, so peewee's rollback then fails: the cause is in the chain."""
    try:
        try:
            raise OperationalError("database or disk is full")
        except OperationalError:
            raise OperationalError("cannot rollback - no transaction is active")
    except OperationalError as error:
        assert str(full_disk_error(error)) == "database or disk is full"
    assert full_disk_error(OSError(28, "No space left on device")) is not None
    assert full_disk_error(sqlite3.OperationalError("database is locked")) is None
    assert full_disk_error(OSError(13, "Permission denied")) is None
