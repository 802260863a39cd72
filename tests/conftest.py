"""flaskr-style fixtures on a real SQLite file in a temporary folder, with the task queue and the model files
there too: nothing a test writes lands in the repository."""
import gzip
import os
import uuid
from urllib.parse import urlsplit

import pytest

from labeler.cli import register_commands
from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.labeling import decisions, leases
from labeler.store.settings import update_labeling_settings
from labeler.store.db import database
from labeler.web import create_app
from labeler.worker import jobs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")
TRANSACTIONS_SAMPLE = os.path.join(ROOT, "data", "transactions_sample.csv.gz")
PASSWORD = "correct horse battery"


@pytest.fixture
def app(tmp_path):
    app = create_app({
        "TESTING": True,
        "DATABASE": str(tmp_path / "labeler.sqlite3"),
        "TASK_QUEUE": str(tmp_path / "queue.sqlite3"),
        "MODEL_FOLDER": str(tmp_path / "models"),
        "SECRET_KEY": "test-secret",
    })
    with database.connection_context():
        yield app


@pytest.fixture
def config(app):
    """The app's configuration (labeler.config.Config)."""
    return app.extensions["labeler.config"]


@pytest.fixture
def run_jobs(config):
    """Run the jobs waiting in the store in this process, as the worker would: ``run_jobs()`` (all) or
    ``run_jobs(dataset)``; returns {job id: final state}."""
    return lambda dataset=None: jobs.run_queued(config, dataset)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    register_commands(app)
    return app.test_cli_runner()


@pytest.fixture
def analyst(app):
    return create_user("ana", PASSWORD, "analyst")


@pytest.fixture
def admin(app):
    return create_user("root", PASSWORD, "admin")


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory):
    """The first 2,000 rows of the bundled sample plus all its frauds, as a plain CSV."""
    import pandas as pd

    frame = pd.read_csv(SAMPLE, dtype={"Class": str})
    keep = frame.iloc[:2000]
    keep = pd.concat([keep, frame[(frame["Class"] == "1") & (frame.index >= 2000)]])
    path = tmp_path_factory.mktemp("data") / "small.csv"
    keep.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def dataset(app, small_csv):
    """A dataset imported from the small real sample, with ground truth."""
    return import_file(small_csv, "cc", label_column="Class").dataset


@pytest.fixture
def quick(dataset):
    """The sample dataset with a quick model selection (one repeat of the cross-validation)."""
    dataset.settings = {**dataset.settings, "cv_repeats": 1}
    dataset.save()
    return dataset


@pytest.fixture
def queued(dataset, run_jobs):
    """``dataset`` with its queue and feature statistics computed by a refill job, as after an import."""
    jobs.request(dataset, jobs.REFILL, "test")
    assert set(run_jobs(dataset).values()) == {"done"}
    return dataset


def login(client, name, password=PASSWORD):
    """Log in through the real form, CSRF token included."""
    page = client.get("/login")
    token = csrf_token_of(page.get_data(as_text=True))
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token})


def csrf_token_of(html):
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


@pytest.fixture(scope="session")
def sample_lines():
    """The lines of the bundled simulated raw-transaction sample, header first."""
    with gzip.open(TRANSACTIONS_SAMPLE, "rt", encoding="utf-8") as stream:
        return stream.read().splitlines()


def label_through_screen(dataset, user, values):
    """``user`` labels the items the screen gives them with ``values`` in turn; returns the item ids."""
    lease = leases.next_item(dataset, user)
    done = []
    for value in values:
        outcome, following = decisions.decide(dataset, user, lease.item_id, f"label:{value}")
        assert outcome.kind == "recorded"
        done.append(lease.item_id)
        lease = following
    return done


@pytest.fixture
def double_labeled(queued, analyst, admin):
    """ana labels 12 items, every one of which goes to bob for a blind second look; then bob undoes one."""
    dataset = queued
    bob = create_user("bob", PASSWORD, "analyst")
    update_labeling_settings(dataset, {"overlap_share": 1.0})
    ana_values = ["genuine"] * 8 + ["fraud"] * 4
    ana_items = label_through_screen(dataset, analyst, ana_values)
    update_labeling_settings(dataset, {"overlap_share": 0.0})
    bob_values = ["genuine"] * 6 + ["fraud"] * 2 + ["fraud"] * 3 + ["genuine"]
    bob_items = label_through_screen(dataset, bob, bob_values)
    assert bob_items == ana_items  # second looks come first, oldest first
    return {"ana": dict(zip(ana_items, ana_values)), "bob": dict(zip(bob_items, bob_values)), "bob_user": bob}


@pytest.fixture
def postgres_url():
    """The URL of a scratch database on the LABELER_TEST_POSTGRES_URL server, dropped afterwards."""
    url = os.environ.get("LABELER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("LABELER_TEST_POSTGRES_URL is not set (scripts/test.sh starts a throwaway PostgreSQL server)")
    import psycopg2

    name = f"labeler_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        if database.obj is not None and not database.is_closed():
            database.close()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
