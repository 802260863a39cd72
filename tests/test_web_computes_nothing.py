"""The web process computes nothing: in a fresh interpreter, importing it and serving a whole labeling session
(every page, decisions, skip, undo, edit, the polls, the admin pages, the JSON API) loads neither TensorFlow/Keras
nor scikit-learn (nor SciPy, nor any model code but models.names and the importer's models.features). The store is prepared here first, with the
worker's refill job run in this process, so that the interpreter under test only opens the store and serves."""
import datetime
import json
import subprocess
import sys

import pytest

from labeler.data import tokens
from labeler.data.importer import import_file
from labeler.data.users import create_user
from labeler.labeling.leases import REFILL_COOLDOWN_SECONDS
from labeler.store.db import Dataset, Job, Label, Lease, User, utcnow
from labeler.store.settings import update_labeling_settings
from labeler.worker import jobs
from tests.conftest import PASSWORD, ROOT

MACHINE_LEARNING = ("tensorflow", "keras", "sklearn", "scipy")
# plain names (strategies, measures), and the importer's raw-transaction features (numpy and pandas only, as the
# layers contract allows the data layer): the JSON API appends pushed rows through the importer
ALLOWED_MODEL_MODULES = ("models", "models.names", "models.features")

LOADED = f"""
def machine_learning_loaded():
    return sorted(m for m in sys.modules
                  if m.split(".")[0] in {MACHINE_LEARNING!r}
                  or (m.split(".")[0] == "models" and m not in {ALLOWED_MODEL_MODULES!r}))
"""

IMPORT_ONLY = "import json, sys\nimport labeler.web\n" + LOADED + "print(json.dumps(machine_learning_loaded()))\n"

SESSION = "import json, re, sys\n" + LOADED + """
from labeler.web import create_app

store, queue, models, password, token = sys.argv[1:6]
app = create_app({"DATABASE": store, "TASK_QUEUE": queue, "MODEL_FOLDER": models, "SECRET_KEY": "x",
                  "WTF_CSRF_ENABLED": False})
client = app.test_client()
HX = {"HX-Request": "true"}
steps = []


def step(name, response):
    html = response.get_data(as_text=True)
    item = re.search(r'data-item-id="(\\d+)"', html)
    outcome = re.search(r'data-outcome="(\\w+)"', html)
    steps.append({"step": name, "status": response.status_code, "item": int(item[1]) if item else None,
                  "outcome": outcome[1] if outcome else None, "preparing": "data-preparing" in html})
    return steps[-1]


step("login ana", client.post("/login", data={"name": "ana", "password": password}))
shown = step("labeling page", client.get("/datasets/cc/label"))["item"]
shown = step("accept", client.post(f"/datasets/cc/label/{shown}", data={"decision": "accept"}, headers=HX))["item"]
first_labeled = shown
shown = step("fraud", client.post(f"/datasets/cc/label/{shown}", data={"decision": "label:fraud",
                                  "reason": "card testing", "note": "three small charges"}, headers=HX))["item"]
shown = step("skip", client.post(f"/datasets/cc/label/{shown}/skip", headers=HX))["item"]
shown = step("genuine", client.post(f"/datasets/cc/label/{shown}", data={"decision": "label:genuine"},
                                    headers=HX))["item"]
shown = step("reject", client.post(f"/datasets/cc/label/{shown}", data={"decision": "reject"}, headers=HX))["item"]
shown = step("undo", client.post("/datasets/cc/label/undo", headers=HX))["item"]
shown = step("genuine again", client.post(f"/datasets/cc/label/{shown}", data={"decision": "label:genuine"},
                                          headers=HX))["item"]
step("edit", client.post(f"/datasets/cc/label/{first_labeled}/edit", data={"value": "fraud",
                         "reason": "other"}, headers=HX))
step("status poll", client.get("/datasets/cc/label/status", headers=HX))
step("labeling poll", client.get("/datasets/cc/label", headers=HX))
step("empty queue", client.get("/datasets/fresh/label"))
step("preparing poll", client.get("/datasets/fresh/label", headers=HX))
step("logout", client.post("/logout"))

step("login root", client.post("/login", data={"name": "root", "password": password}))
for rule in app.url_map.iter_rules():
    if ("GET" in rule.methods and not rule.arguments - {"name"} and rule.endpoint != "static"
            and not rule.endpoint.startswith("api.")):  # the JSON API takes a token, not the cookie (below)
        url = rule.build({"name": "cc"} if "name" in rule.arguments else {})[1]
        step("GET " + url, client.get(url, follow_redirects=True))  # /datasets/cc/items without an id: the table
for url in ("/api/v1/datasets/cc/stats", "/api/v1/datasets/cc/labels", "/api/v1/datasets/cc/items/0"):
    step("API " + url, client.get(url, headers={"Authorization": "Bearer " + token}))
step("save labeling settings", client.post("/admin/datasets/cc/labeling-settings",
                                           data={"overlap_share": "0.1", "lease_minutes": "7"}))
print(json.dumps({"steps": steps, "loaded": machine_learning_loaded()}))
"""


def _run(*args):
    result = subprocess.run([sys.executable, "-c", *args], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_web_loads_no_machine_learning():
    assert _run(IMPORT_ONLY) == []


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_whole_labeling_session_loads_no_machine_learning(app, config, queued, small_csv):
    dataset = queued  # its queue and feature statistics written by the refill job, run in this process
    create_user("ana", PASSWORD, "analyst")
    create_user("root", PASSWORD, "admin")
    fresh = import_file(small_csv, "fresh", label_column="Class").dataset  # no queue: the page must ask for one
    settings = {**dataset.settings, "retrain_every": 3}  # the session's labels queue a retrain
    Dataset.update(settings=settings).where(Dataset.id == dataset.id).execute()
    update_labeling_settings(dataset, {"refill_below": 10000})  # and a refill: the queue counts as low
    long_ago = utcnow() - datetime.timedelta(seconds=REFILL_COOLDOWN_SECONDS + 60)
    Job.update(finished_at=long_ago).where(Job.kind == jobs.REFILL).execute()

    token = tokens.create_token(User.get(User.name == "root"), "test", ["read"])[1]
    report = _run(SESSION, config.DATABASE, config.TASK_QUEUE, config.MODEL_FOLDER, PASSWORD, token)
    steps = {step["step"]: step for step in report["steps"]}
    assert len(steps) == len(report["steps"])
    assert steps["login ana"]["status"] == steps["login root"]["status"] == steps["logout"]["status"] == 302
    pages = [step for name, step in steps.items() if name.startswith("GET ")]
    assert len(pages) >= 4 and "GET /admin/datasets/cc/agreement" in steps
    assert all(step["status"] == 200 for step in pages), pages
    assert [step["status"] for name, step in steps.items() if name.startswith("API ")] == [200, 200, 200]
    expected = {"accept": "recorded", "fraud": "recorded", "skip": "skipped", "genuine": "recorded",
                "reject": "recorded", "undo": "undone", "genuine again": "recorded", "edit": "edited"}
    assert {name: (steps[name]["status"], steps[name]["outcome"]) for name in expected} == {
        name: (200, outcome) for name, outcome in expected.items()}
    labeling = ("labeling page", *expected, "labeling poll")
    assert all(steps[name]["item"] is not None and not steps[name]["preparing"] for name in labeling), steps
    assert steps["status poll"]["status"] == steps["save labeling settings"]["status"] == 200
    for name in ("empty queue", "preparing poll"):
        assert (steps[name]["status"], steps[name]["item"], steps[name]["preparing"]) == (200, None, True)

    # what the session did is in the store: labels, and work requested from the worker, none of it done here
    standing = {label.item_id: label.value for label in Label.effective(dataset)}
    assert len(standing) == 4 and list(standing.values()).count("fraud") == 2
    assert Lease.select().where(Lease.state == "deferred").count() == 1
    assert jobs.latest(dataset, jobs.RETRAIN).state == "queued"
    assert jobs.latest(dataset, jobs.REFILL, "queued") is not None
    assert jobs.latest(fresh, jobs.REFILL).state == "queued"
    assert Dataset.get_by_id(dataset.id).settings["labeling"]["lease_minutes"] == 7.0

    assert report["loaded"] == []
