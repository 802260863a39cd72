"""The architecture holds: import-linter's contracts in setup.cfg (layers, no machine learning below the worker,
models stand-alone, no cycles) pass on the code, and fail on a copy in which a layer reaches up."""
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint(root):
    """lint-imports over the packages under ``root`` with the contracts of setup.cfg; (exit code, output)."""
    result = subprocess.run([LINT, os.path.join(ROOT, "setup.cfg"), "--no-cache"], cwd=root,
                            env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_the_code_keeps_every_import_contract():
    code, output = _lint(ROOT)
    assert code == 0, output
    assert "0 broken" in output


def _copy(tmp_path):
    for package in ("labeler", "models"):
        shutil.copytree(os.path.join(ROOT, package), tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append(path, line):
    with open(path, "a") as stream:
        stream.write(f"\n{line}\n")


@pytest.mark.parametrize("module, line, broken", [
    ("labeler/store/pool.py", "import labeler.web.screen",  # a layer reaching up
     "Layers: each part of labeler imports only the parts below it BROKEN"),
    ("labeler/labeling/leases.py", "from labeler.worker import refill",  # the web path reaching a model
     "never reach the machine learning BROKEN"),
    ("labeler/worker/refill.py", "from labeler.worker import retrain",  # retrain imports refill
     "No import cycles between sibling modules and packages BROKEN"),
    ("models/learner.py", "import labeler.store.db",  # the machine learning reaching the store
     "imports nothing of the product, the web or the store BROKEN"),
])
def test_each_contract_fails_on_a_copy_that_breaks_it(tmp_path, module, line, broken):
    root = _copy(tmp_path)
    _append(root / module, line)
    code, output = _lint(str(root))
    assert code != 0
    assert broken in " ".join(output.split())


def test_no_module_is_named_after_a_standard_library_one():
    ours = set()
    for package in ("labeler", "models"):
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            ours.update(name[:-3] for name in files if name.endswith(".py"))
            ours.add(os.path.basename(folder))
    assert not ours & sys.stdlib_module_names, sorted(ours & sys.stdlib_module_names)
