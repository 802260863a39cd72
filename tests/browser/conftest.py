"""Browser tests: the real server in a subprocess on a free port, driven by Debian's Chromium via Playwright."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from labeler.config import Config
from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.store.db import database, open_database
from labeler.store.migrations import upgrade
from labeler.worker import jobs
from tests.conftest import PASSWORD, ROOT

CHROMIUM = os.environ.get("LABELER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pytest_collection_modifyitems(items):
    """Every browser test is in the slow tier (a real server and a real browser)."""
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.slow)


def store_config(store):
    """The configuration of a test store: its task queue and model files beside it."""
    folder = os.path.dirname(store)
    return Config.load({"DATABASE": store, "INSTANCE_PATH": folder, "TASK_QUEUE": os.path.join(folder, "queue.sqlite3"),
                        "MODEL_FOLDER": os.path.join(folder, "models"),
                        "SECRET_KEY": "browser-test-secret-of-more-than-32-characters"})


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    """Where screenshots go: the folder LABELER_SCREENSHOTS names (``LABELER_SCREENSHOTS=docs`` refreshes the
    README's pictures), else a temporary folder; tracked files are never rewritten unless asked."""
    folder = os.environ.get("LABELER_SCREENSHOTS") or str(tmp_path_factory.mktemp("screenshots"))
    os.makedirs(folder, exist_ok=True)
    return folder


class LiveServer:
    """``python manage.py serve`` on a store; ``url`` is its address, ``store`` its SQLite file. No worker runs:
    a test plays the worker by running the waiting jobs itself (jobs.run_queued)."""

    def __init__(self, store, port, log_path):
        self.store, self.port = store, port
        self.url = f"http://127.0.0.1:{port}"
        self.config = store_config(store)
        env = {**{key: value for key, value in os.environ.items() if not key.startswith("LABELER_")},
               **self.config.environment()}
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/login", timeout=1)
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start; see {log_path}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def imported_store(tmp_path, small_csv):
    """A store with the small real sample imported and users 'ana' (analyst), 'bob' (analyst), 'root' (admin);
    no job has run yet (no queue)."""
    store = str(tmp_path / "labeler.sqlite3")
    open_database(store)
    with database.connection_context():
        upgrade()
        dataset = import_file(small_csv, "cc", label_column="Class").dataset
        for name, role in (("ana", "analyst"), ("bob", "analyst"), ("root", "admin")):
            create_user(name, PASSWORD, role)
        jobs.request(dataset, jobs.REFILL, "after an import", enqueue=False)
    return store


@pytest.fixture
def seeded_store(imported_store):
    """``imported_store`` after the worker's first job: the queue and feature statistics are there."""
    open_database(imported_store)
    with database.connection_context():
        assert set(jobs.run_queued(store_config(imported_store)).values()) == {"done"}
    return imported_store


@pytest.fixture
def live_server(seeded_store, tmp_path):
    log_path = tmp_path / "server.log"
    server = LiveServer(seeded_store, _free_port(), str(log_path))
    yield server
    server.stop()
    print(f"--- {log_path} ---\n{log_path.read_text()}")  # pytest shows it when the test failed


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(page, server, name):
    """Log ``name`` in through the login form and wait for the datasets page."""
    page.goto(server.url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
