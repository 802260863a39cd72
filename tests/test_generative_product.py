"""The autoencoder at work: the worker's job on the real small sample, the stored outputs read with numpy alone
(cold-start scores, the labeling screen's reconstruction bars, the admin's latent map), the command, and the web
process free of TensorFlow with the outputs present.

The autoencoder job fits a Keras model: the tests that run it are in the slow tier."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from labeler.data.importer import import_file
from labeler.store import artifacts
from labeler.store.db import Dataset, GenerativeArtifacts, GroundTruth, Item, Job, Label, Standing
from labeler.store.pool import load_pool
from labeler.web.latent_map import map_view
from labeler.web.screen import reconstruction_bars
from labeler.worker import autoencoder, jobs
from labeler.worker.jobs import task_queue
from labeler.worker.retrain import autoencoder_outdated
from tests.conftest import ROOT, login

slow = pytest.mark.slow


def label_from_truth(dataset, user, frauds, genuine):
    """Human labels copied from ground truth; returns {item id: label}."""
    truth = {row.item_id: row.value for row in GroundTruth.select().join(Item).where(Item.dataset == dataset)}
    positives = [i for i, v in sorted(truth.items()) if v == dataset.positive_label][:frauds]
    negatives = [i for i, v in sorted(truth.items()) if v != dataset.positive_label][:genuine]
    for item_id in positives + negatives:
        Label.create(item=item_id, value=truth[item_id], annotator=user, source="human")
    Standing.refresh(positives + negatives)
    return {item_id: truth[item_id] for item_id in positives + negatives}


def run_through_worker(dataset):
    """Queue the autoencoder job and run its task queue message as the worker does; returns the finished job."""
    job, created = jobs.request(dataset, jobs.AUTOENCODER, "test")
    assert created and [task.args for task in task_queue.huey.pending()] == [(job.id,)]
    task_queue.huey.execute(task_queue.huey.dequeue())
    return Job.get_by_id(job.id)


def refill(dataset, run_jobs):
    """The dataset's queue and feature statistics, as the worker's refill job writes them."""
    jobs.request(dataset, jobs.REFILL, "test", enqueue=False)
    assert set(run_jobs(dataset).values()) == {"done"}


@pytest.fixture
def computed(dataset, analyst):
    """The sample's autoencoder outputs computed by the worker's job, with 10 frauds and 40 genuine labeled."""
    labels = label_from_truth(dataset, analyst, frauds=10, genuine=40)
    job = run_through_worker(dataset)
    assert job.state == "done", job.error
    return {"dataset": dataset, "labels": labels, "job": job, "record": artifacts.artifacts_of(dataset)}


def truth_of(dataset, ids):
    truth = {row.item_id: row.value for row in GroundTruth.select().join(Item).where(Item.dataset == dataset)}
    return np.array([truth[int(i)] == dataset.positive_label for i in ids])


# ---- the job -------------------------------------------------------------------------------------------------


@slow
def test_the_worker_job_stores_reconstructions_scores_and_the_map(computed):
    dataset, record, job = computed["dataset"], computed["record"], computed["job"]
    ids, features = load_pool(dataset)
    assert job.kind == jobs.AUTOENCODER and job.percent == 100.0 and job.payload["pool_rows"] == len(ids)
    assert record.pool_rows == len(ids) and record.projection == "pca" and record.device == "CPU"
    assert record.seconds > 0 and len(record.details["feature_error"]) == dataset.n_features
    for path in (record.ids_path, record.reconstruction_path, record.anomaly_path, record.latent_path,
                 record.model_path):
        assert os.path.exists(path) and os.path.dirname(path).endswith(f"generative-{dataset.id}")
    assert np.array_equal(np.load(record.ids_path), ids)
    reconstruction = np.load(record.reconstruction_path)
    assert reconstruction.dtype == np.float32 and reconstruction.shape == features.shape
    assert np.isfinite(reconstruction).all()
    assert np.allclose(record.scaling["minimum"], features.min(axis=0))
    scores = np.load(record.anomaly_path)
    assert scores.dtype == np.float32 and scores.shape == (len(ids),) and (scores >= 0).all()
    is_fraud = truth_of(dataset, ids)
    # the reconstruction error ranks frauds far above their share of the pool (49 in 2,041)
    assert average_precision_score(is_fraud, scores) > 5 * is_fraud.mean()
    latent = np.load(record.latent_path)
    assert np.array_equal(np.sort(latent["ids"]), ids)  # a pool under 5,000 items is mapped whole
    assert np.isfinite(latent["x"]).all() and np.isfinite(latent["y"]).all()
    on_map = dict(zip(latent["ids"].tolist(), latent["labels"].tolist()))
    assert all(on_map[item_id] == value for item_id, value in computed["labels"].items())
    assert sum(1 for value in on_map.values() if value) == len(computed["labels"])


@slow
def test_a_second_run_replaces_the_files_and_the_row(computed):
    dataset, first = computed["dataset"], computed["record"]
    second = run_through_worker(dataset)
    assert second.state == "done", second.error
    assert GenerativeArtifacts.select().where(GenerativeArtifacts.dataset == dataset).count() == 1
    record = artifacts.artifacts_of(dataset)
    assert record.ids_path != first.ids_path and os.path.exists(record.anomaly_path)
    assert not any(os.path.exists(path) for path in (first.ids_path, first.reconstruction_path,
                                                     first.anomaly_path, first.latent_path, first.model_path))
    files = os.listdir(os.path.dirname(record.ids_path))
    assert len(files) == 5 and not [name for name in files if name.endswith(".part")]  # no temp file left


def test_a_sample_is_fitted_when_the_pool_is_large(dataset):
    _, features = load_pool(dataset)
    sample = autoencoder.fit_sample(features, 500, seed=3)
    assert len(sample) == 500 and np.array_equal(sample, np.unique(sample))
    assert np.array_equal(features[sample].min(axis=0), features.min(axis=0))
    assert np.array_equal(features[sample].max(axis=0), features.max(axis=0))
    assert np.array_equal(sample, autoencoder.fit_sample(features, 500, seed=3))
    assert np.array_equal(autoencoder.fit_sample(features, 5000), np.arange(len(features)))


def test_the_map_keeps_every_labeled_item_and_samples_the_rest():
    labeled = np.array([5, 17, 980])
    points = autoencoder.map_sample(1000, labeled, 50, seed=0)
    assert len(points) == 50 and set(labeled) <= set(points.tolist())
    assert np.array_equal(points, autoencoder.map_sample(1000, labeled, 50, seed=0))
    assert len(autoencoder.map_sample(1000, np.arange(100), 50, seed=0)) == 50


@slow
def test_a_failed_job_says_why_and_keeps_the_previous_outputs(computed, config):
    dataset, before = computed["dataset"], computed["record"]
    job, _ = jobs.request(dataset, jobs.AUTOENCODER, "test", options={"projection": "umap"})
    assert jobs.run(job.id, config) == "failed"
    job = Job.get_by_id(job.id)
    assert job.state == "failed" and "projection must be one of pca, tsne, got 'umap'" in job.error
    assert job.payload["pool_rows"] == before.pool_rows  # recorded before the failure, kept
    assert artifacts.artifacts_of(dataset).ids_path == before.ids_path and os.path.exists(before.ids_path)
    assert jobs.run(job.id, config) == "failed"  # a job no longer waiting is left alone


@slow
def test_autoencoder_outdated_follows_the_pool_and_failed_jobs(computed, config, small_csv, tmp_path):
    dataset = computed["dataset"]
    assert not autoencoder_outdated(dataset)
    import pandas as pd

    more = tmp_path / "more.csv"
    frame = pd.read_csv(small_csv, dtype={"Class": str})
    pd.concat([frame, frame.head(30)]).to_csv(more, index=False)  # ids are row numbers: 30 new rows
    added = import_file(str(more), "cc", label_column="Class").rows_added
    assert added == 30 and autoencoder_outdated(dataset)
    assert artifacts.stored_anomaly(dataset, load_pool(dataset)[0]) is None  # new items have no score
    job, _ = jobs.request(dataset, jobs.AUTOENCODER, "test", options={"projection": "umap"})
    assert not autoencoder_outdated(dataset)  # one is waiting
    assert jobs.run(job.id, config) == "failed"
    assert not autoencoder_outdated(dataset)  # it failed on this very pool: no retry after every retrain


@slow
def test_a_retrain_queues_the_job_when_outputs_are_missing(dataset, analyst, run_jobs):
    label_from_truth(dataset, analyst, frauds=10, genuine=40)
    retrain, _ = jobs.request(dataset, jobs.RETRAIN, "test")
    states = run_jobs(dataset)  # the retrain, then the jobs it queued
    assert states[retrain.id] == "done"
    queued = list(Job.select().where((Job.dataset == dataset) & (Job.kind == jobs.AUTOENCODER)))
    assert [(job.state, job.payload["reason"]) for job in queued] == [("done", "after a retrain")]
    assert states == {retrain.id: "done", queued[0].id: "done"}
    assert artifacts.artifacts_of(dataset).pool_rows == len(load_pool(dataset)[0])
    Label.create(item=Item.select().where(Item.dataset == dataset).order_by(Item.id.desc()).first(),
                 value="genuine", annotator=analyst, source="human")
    dataset = Dataset.get_by_id(dataset.id)
    dataset.settings = {**dataset.settings, "retrain_every": 1}
    dataset.save()
    again, _ = jobs.request(dataset, jobs.RETRAIN, "test")
    assert run_jobs(dataset) == {again.id: "done"}
    assert Job.get_by_id(again.id).payload["serving"]  # a real retrain ran, and queued no autoencoder job
    assert Job.select().where((Job.dataset == dataset) & (Job.kind == jobs.AUTOENCODER)).count() == 1


def test_interrupted_jobs_are_failed_and_queued_again(dataset):
    job = Job.create(dataset=dataset, kind=jobs.AUTOENCODER, state="running", stage="fitting")
    assert jobs.recover_interrupted() == {jobs.AUTOENCODER: 1}
    stopped = Job.get_by_id(job.id)
    assert (stopped.state, stopped.stage) == ("failed", "interrupted") and "worker stopped" in stopped.error
    waiting = Job.get((Job.dataset == dataset) & (Job.kind == jobs.AUTOENCODER) & (Job.state == "queued"))
    assert [task.args for task in task_queue.huey.pending()] == [(waiting.id,)]
    assert waiting.payload["reason"] == "retry after an interrupted autoencoder job"


# ---- stored_anomaly ------------------------------------------------------------------------------------------


@slow
def test_stored_anomaly_is_aligned_to_the_ids_asked_for(computed):
    dataset, record = computed["dataset"], computed["record"]
    ids = np.load(record.ids_path)
    scores = np.load(record.anomaly_path)
    order = np.random.default_rng(0).permutation(len(ids))[:300]
    got = artifacts.stored_anomaly(dataset, ids[order])
    assert got.dtype == np.float64 and np.array_equal(got, scores[order].astype(np.float64))
    assert np.array_equal(artifacts.stored_anomaly(dataset, ids), scores.astype(np.float64))
    assert artifacts.stored_anomaly(dataset, [int(ids.max()) + 1]) is None


def test_without_outputs_nothing_is_read(dataset):
    ids, _ = load_pool(dataset)
    assert artifacts.stored_anomaly(dataset, ids) is None
    assert artifacts.reconstruction_of(dataset, int(ids[0])) is None
    assert artifacts.latent_map(dataset) is None and map_view(dataset) is None


@slow
def test_a_corrupt_or_missing_file_reads_as_none(computed):
    dataset, record = computed["dataset"], computed["record"]
    ids = np.load(record.ids_path)
    with open(record.anomaly_path, "r+b") as stored:
        stored.truncate(200)  # a torn file: the header survives, the data does not
    assert artifacts.stored_anomaly(dataset, ids) is None
    assert artifacts.reconstruction_of(dataset, int(ids[0])) is not None  # the other files still read
    with open(record.latent_path, "wb") as stored:
        stored.write(b"PK\x03\x04 a torn zip archive")
    assert map_view(dataset) is None
    with open(record.ids_path, "wb") as stored:
        stored.write(b"not a numpy file")
    assert artifacts.reconstruction_of(dataset, int(ids[0])) is None
    os.remove(record.ids_path)
    assert artifacts.stored_anomaly(dataset, ids) is None


# ---- the labeling screen -------------------------------------------------------------------------------------


def item_on_screen(html):
    return int(re.search(r'data-item-id="(\d+)"', html)[1])


@slow
def test_the_screen_shows_actual_values_beside_the_reconstruction(computed, client, run_jobs):
    dataset = computed["dataset"]
    refill(dataset, run_jobs)
    login(client, "ana")
    page = client.get("/datasets/cc/label")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "data-reconstruction" in html
    assert html.count('<g class="recon') == dataset.n_features
    item = Item.get_by_id(item_on_screen(html))
    stored = artifacts.reconstruction_of(dataset, item.id)
    record = computed["record"]
    row = list(np.load(record.ids_path)).index(item.id)
    assert np.array_equal(stored["reconstruction"], np.load(record.reconstruction_path)[row])
    first = dataset.feature_columns[0]
    expected = f"{first}: actual {float(item.feature_vector[0]):.6g}, reconstruction " \
               f"{float(stored['reconstruction'][0]):.6g}"
    assert expected in html
    bars = artifacts.scaled(item.feature_vector, stored["minimum"], stored["maximum"])
    widths = [float(w) for w in re.findall(r'<rect class="actual" x="80" y="\d+" width="([\d.]+)"', html)]
    assert np.allclose(widths, np.clip(bars, 0, 1) * 200, atol=0.051)


@slow
def test_the_bars_compare_each_feature_with_the_pools_error_and_frauds_stand_out(computed):
    dataset, record = computed["dataset"], computed["record"]
    ids, features = load_pool(dataset)
    reconstruction = np.load(record.reconstruction_path).astype(np.float64)
    low, span = features.min(axis=0), np.ptp(features, axis=0)
    span[span == 0] = 1
    errors = np.square((features - low) / span - (reconstruction - low) / span)
    pool_mean = errors.mean(axis=0)
    is_fraud = truth_of(dataset, ids)
    genuine = np.flatnonzero(~is_fraud)[:200]
    share_marked = {}
    for name, rows in (("fraud", np.flatnonzero(is_fraud)), ("genuine", genuine)):
        marked = 0
        for row in rows:
            view = reconstruction_bars(dataset, int(ids[row]), features[row], dataset.feature_columns)
            ratios = np.array([bar["ratio"] for bar in view["rows"]])
            assert np.allclose(ratios, errors[row] / pool_mean, rtol=1e-3)
            flags = np.array([bar["marked"] for bar in view["rows"]])
            assert flags.sum() <= 3 and (ratios[flags] >= 10).all()  # at most 3, each 10 times the pool's
            assert not flags.any() or (ratios[~flags & (ratios >= 10)] <= ratios[flags].min()).all()
            marked += flags.any()
        share_marked[name] = marked / len(rows)
    assert share_marked["fraud"] > 0.6 and share_marked["genuine"] < 0.2, share_marked  # measured 0.78, 0.05


def test_without_outputs_the_screen_stays_as_it_was(queued, analyst, client):
    login(client, "ana")
    page = client.get("/datasets/cc/label")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "data-reconstruction" not in html and '<g class="bar' in html
    assert reconstruction_bars(queued, item_on_screen(html), np.zeros(queued.n_features),
                               queued.feature_columns) is None


# ---- the admin's latent map ----------------------------------------------------------------------------------


@slow
def test_the_latent_map_is_for_admins_and_draws_every_point(computed, admin, client):
    dataset = computed["dataset"]
    login(client, "root")
    assert 'href="/admin/datasets/cc/latent-map"' in client.get("/datasets/cc").get_data(as_text=True)
    page = client.get("/admin/datasets/cc/latent-map")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<b data-projection>PCA</b>" in html
    figure = html[html.index('<svg class="latent"'):]
    assert figure.count("<circle") == len(load_pool(dataset)[0])
    assert figure.count("<title>") == len(computed["labels"])
    assert '<li data-label="fraud">' in html and "fraud (10)" in html and "genuine (40)" in html
    assert f"unlabeled ({len(load_pool(dataset)[0]) - 50:,})" in html


@slow
def test_analysts_get_403_and_no_link(computed, analyst, client):
    login(client, "ana")
    assert client.get("/admin/datasets/cc/latent-map").status_code == 403
    assert "latent-map" not in client.get("/datasets/cc").get_data(as_text=True)


def test_the_latent_map_page_without_outputs_says_how_to_make_one(dataset, admin, client):
    login(client, "root")
    page = client.get("/admin/datasets/cc/latent-map")
    assert page.status_code == 200 and "No latent map yet" in page.get_data(as_text=True)
    assert client.get("/admin/datasets/nope/latent-map").status_code == 404


@slow
def test_labels_and_names_on_the_map_are_escaped(app, small_csv, analyst, admin, client):
    marked = ["<i>genuine</i>", "<script>alert(1)</script>"]
    dataset = import_file(small_csv, "x<b>", label_column="Class", labels=marked).dataset
    label_from_truth(dataset, analyst, frauds=3, genuine=3)
    assert run_through_worker(dataset).state == "done"
    login(client, "root")
    html = client.get("/admin/datasets/x%3Cb%3E/latent-map").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;i&gt;genuine&lt;/i&gt;" in html
    assert "<script>alert" not in html and "<i>genuine" not in html and "x<b>" not in html


# ---- the command and the web process -------------------------------------------------------------------------


@slow
def test_the_command_computes_in_process_and_reports(dataset, runner):
    from labeler.cli.autoencoder import generative_command

    result = runner.invoke(generative_command, ["--dataset", "cc", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    count = len(load_pool(dataset)[0])
    assert f"Autoencoder outputs of 'cc' stored: {count:,} items, latent map of {count:,} points (PCA)" in result.output
    record = artifacts.artifacts_of(dataset)
    assert record.details["epochs"] == 2
    job = Job.get((Job.dataset == dataset) & (Job.kind == jobs.AUTOENCODER))
    assert job.state == "done" and job.payload["reason"] == "generative command"
    missing = runner.invoke(generative_command, ["--dataset", "nope"])
    assert missing.exit_code == 1 and missing.output.strip().startswith("Error: no dataset named 'nope'")


WEB_SCRIPT = """
import json, sys
from labeler.store.artifacts import stored_anomaly
from labeler.store.db import database, Dataset
from labeler.web import create_app
app = create_app({**json.loads(sys.argv[1]), "SECRET_KEY": "x", "WTF_CSRF_ENABLED": False})
with database.connection_context():
    dataset = Dataset.get(Dataset.name == "cc")
    ids = [int(i) for i in sys.argv[2].split(",")]
    scores = stored_anomaly(dataset, ids)
client = app.test_client()
statuses = {}
for name in ("root", "ana"):
    client.post("/login", data={"name": name, "password": "correct horse battery"})
    for url in ("/datasets/cc/label", "/admin/datasets/cc/latent-map"):
        response = client.get(url)
        statuses[name + " " + url] = [response.status_code, "data-reconstruction" in response.get_data(as_text=True)]
    client.post("/logout")
print(json.dumps({"scores": None if scores is None else scores.tolist(), "statuses": statuses,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))}))
"""


@slow
def test_the_web_process_reads_the_outputs_without_tensorflow(app, config, computed, admin, run_jobs):
    refill(computed["dataset"], run_jobs)
    ids = np.load(computed["record"].ids_path)[:3]
    where = {key: getattr(config, key) for key in ("INSTANCE_PATH", "DATABASE", "TASK_QUEUE", "MODEL_FOLDER")}
    result = subprocess.run([sys.executable, "-c", WEB_SCRIPT, json.dumps(where), ",".join(map(str, ids))],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    assert np.allclose(report["scores"], np.load(computed["record"].anomaly_path)[:3])
    assert report["statuses"]["root /admin/datasets/cc/latent-map"][0] == 200
    assert report["statuses"]["ana /admin/datasets/cc/latent-map"][0] == 403
    assert report["statuses"]["ana /datasets/cc/label"] == [200, True]
