"""The bad-input probe (tests/probe.py) in CI: every fast case fails the way it should, with one line, the
expected code and words, and the store unchanged. ``python -m tests.probe`` prints the same cases as a table."""
import pytest

from tests import probe

pytestmark = pytest.mark.slow  # about 80 s on two cores: one process per command case


def test_every_bad_input_gets_one_line_and_leaves_the_store_unchanged():
    cases = probe.run_cases([case for case in probe.all_cases() if not case.slow])
    assert len(cases) >= 55
    failed = [f"{case.name}: {case.outcome}" for case in cases if case.passed() is False]
    assert not failed, "\n".join(failed)
    not_run = [case.name for case in cases if case.passed() is None]
    if not_run:  # only the full-disk cases need what a system may not allow (a tmpfs in a namespace)
        assert not probe.can_mount_tmpfs() and all("disk full" in name for name in not_run), not_run
