"""flaskr-style fixtures on a real SQLite file in a temporary folder."""
import os
import tempfile

import pytest

# Retrain jobs enqueued by labeling tests go to a throwaway queue file, never the repository's instance folder.
os.environ.setdefault("LABELER_QUEUE", os.path.join(tempfile.mkdtemp(prefix="labeler-test-queue-"), "queue.sqlite3"))

from labeler import create_app
from labeler.db import database
from labeler.importer import import_file
from labeler.users import create_user

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")
PASSWORD = "correct horse battery"


@pytest.fixture
def app(tmp_path):
    app = create_app({
        "TESTING": True,
        "DATABASE": str(tmp_path / "labeler.sqlite3"),
        "SECRET_KEY": "test-secret",
    })
    with database.connection_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
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


def login(client, name, password=PASSWORD):
    """Log in through the real form, CSRF token included."""
    page = client.get("/login")
    token = csrf_token_of(page.get_data(as_text=True))
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token})


def csrf_token_of(html):
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]
