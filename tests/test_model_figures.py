"""Honest model figures: the holdout measure's bootstrap interval (models.gate), recorded by the retrain, shown in
the labeling header and on the admin models page with its counts, never the cross-validated score as quality."""
import re
from html import unescape

import numpy as np
import pytest

from labeler.data.model_versions import holdout_figure
from labeler.store.db import GroundTruth, Item, Label, ModelVersion, Standing, utcnow
from labeler.web.screen import dataset_status
from labeler.worker.retrain import retrain
from models import gate
from tests.conftest import login

HX = {"HX-Request": "true"}


def _binary(positives, negatives, seed=0):
    """Held-out labels and scores of an informative but imperfect model."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.ones(positives, np.int8), np.zeros(negatives, np.int8)])
    return y, rng.normal(1.5 * y, 1.0)


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_interval_contains_the_point_estimate_and_narrows_with_more_data():
    widths = []
    for positives, negatives in ((10, 100), (40, 400), (160, 1600)):
        y, scores = _binary(positives, negatives)
        low, high = gate.ap_interval(y, scores)
        assert 0.0 <= low <= gate.average_precision(y, scores) <= high <= 1.0
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    assert gate.ap_interval(y, scores) == gate.ap_interval(y, scores)  # seeded
    assert gate.ap_interval(y, scores, level=0.5)[1] - gate.ap_interval(y, scores, level=0.5)[0] < widths[2]


def test_no_interval_with_too_few_positives_or_no_negative():
    y, scores = _binary(gate.MIN_POSITIVES - 1, 200)
    assert gate.ap_interval(y, scores) is None
    y, scores = _binary(gate.MIN_POSITIVES, 200)
    assert gate.ap_interval(y, scores) is not None
    assert gate.ap_interval(np.ones(20), np.linspace(0, 1, 20)) is None
    with pytest.raises(ValueError, match="level"):
        gate.ap_interval(y, scores, level=1.0)
    with pytest.raises(ValueError, match="one length"):
        gate.ap_interval(y, scores[:-1])


def test_the_macro_interval_measures_the_classes_the_gate_compares():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], [200, 30, 3])  # class 2 has too few held-out labels to be measured
    scores = rng.random((len(y), 3)) + np.eye(3)[y]
    scores /= scores.sum(axis=1, keepdims=True)
    low, high = gate.macro_ap_interval(y, scores)
    assert low <= gate.macro_average_precision(y, scores, [0, 1]) <= high
    verdict = gate.compare_classes(y, scores, np.full(scores.shape, 1.0), positives=[1, 2])
    assert verdict.new_ap == gate.macro_average_precision(y, scores, [0, 1]) and verdict.interval == [low, high]
    assert gate.macro_ap_interval(np.repeat([0, 1, 2], [3, 4, 2]), np.full((9, 3), 1 / 3)) is None
    alone = gate.alone(y, scores, "not compared: model 1 scored another label set", positives=[1, 2])
    assert (alone.passed, alone.old_ap, alone.bound, alone.positives) == (True, None, None, 33)
    assert alone.new_ap == verdict.new_ap and alone.interval == [low, high]


def test_the_gate_records_the_new_models_interval_from_its_own_resamples():
    y, new = _binary(20, 300)
    _, old = _binary(20, 300, seed=5)
    verdict = gate.compare(y, new, old)
    assert verdict.interval == gate.ap_interval(y, new)  # the same stratified resamples, the same seed
    assert verdict.interval[0] <= verdict.new_ap <= verdict.interval[1]
    few = np.r_[0:3, 20:120]  # 3 positives: not measured
    assert gate.compare(y[few], new[few], old[few]).interval is None


# ---------------------------------------------------------------------------------------------------------------
# The header and the models page on recorded versions


def _version(dataset, gate_record, **fields):
    values = {"kind": "logistic", "metrics": {"auprc": 1.0, "pseudo_standing": 1234}, "labels_used": 60,
              "device": "cpu", **fields}
    return ModelVersion.create(dataset=dataset, gate=gate_record, **values)


MEASURED = {"passed": True, "new_ap": 0.8312, "old_ap": 0.7, "holdout": 120, "positives": 14, "bound": 0.2,
            "reason": "AP 0.83 vs 0.70 on 120 held-out labels (14 positive): not worse beyond noise",
            "interval": [0.7104, 0.9221], "level": 0.95, "baseline": "cold start", "baseline_version": None}


def _header(client):
    return client.get("/datasets/cc/label/status", headers=HX).get_data(as_text=True)


def test_the_header_shows_the_holdout_measure_with_its_counts_and_interval(client, dataset, admin, analyst):
    _version(dataset, MEASURED, serving=True, served_at=utcnow())
    login(client, "ana")
    html = _header(client)
    assert "holdout AP 0.83 (95% interval 0.71–0.92; 120 held-out labels, 14 fraud)" in html
    assert "auprc" not in html and "1.000" not in html and "1,234 pseudo-labels" in html
    assert "/admin/datasets/cc/models" not in html  # analysts do not get the admin link
    login(client, "root")
    assert 'href="/admin/datasets/cc/models"' in _header(client)


@pytest.mark.parametrize("record, text", [
    ({"passed": True, "new_ap": None, "old_ap": None, "holdout": 40, "positives": 3, "bound": None,
      "interval": None, "reason": "not compared: 3 positive among 40 held-out labels"},
     "holdout: 3 fraud among 40 held-out labels, too few to measure"),
    ({"passed": True, "new_ap": 0.76, "old_ap": 0.83, "holdout": 120, "positives": 14, "bound": 0.04,
      "reason": "AP 0.76 vs 0.83: not worse beyond noise"},  # trained before the interval was recorded
     "holdout AP 0.76 (120 held-out labels, 14 fraud)"),
    ({"passed": True, "new_ap": None, "old_ap": None, "holdout": 90, "positives": 12, "bound": None,
      "reason": "not compared: model 1 has no readable held-out scores"},
     "holdout: 12 fraud among 90 held-out labels, not measured"),
    (None, "holdout not recorded (trained before the gate)"),
])
def test_small_holdouts_and_older_records_are_said_honestly(client, dataset, analyst, record, text):
    version = _version(dataset, record, serving=True, served_at=utcnow())
    assert holdout_figure(version, dataset)["text"] == text
    assert dataset_status(dataset)["holdout"]["text"] == text
    login(client, "ana")
    assert text in _header(client)


def test_the_models_page_lists_every_version_with_its_figures_and_why(client, dataset, admin):
    first = _version(dataset, MEASURED, served_at=utcnow())
    lower = {**MEASURED, "new_ap": 0.7611, "old_ap": 0.8312, "bound": 0.0413, "interval": [0.62, 0.88],
             "baseline": f"model {first.id}", "baseline_version": first.id,
             "reason": "AP 0.76 vs 0.83 on 120 held-out labels <script>alert(1)</script>: not worse beyond noise"}
    second = _version(dataset, lower, serving=True, served_at=utcnow(), metrics={"auprc": 0.97})
    lost = {**MEASURED, "passed": False, "new_ap": 0.41, "old_ap": 0.76, "bound": -0.21,
            "baseline": f"model {second.id}", "baseline_version": second.id, "reason": "worse beyond noise",
            "line": f"model {second.id} kept: new model AP 0.41 vs 0.76 on 120 held-out labels"}
    third = _version(dataset, lost)
    login(client, "root")
    response = client.get("/admin/datasets/cc/models")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    positions = [html.index(f'id="model-{version.id}"') for version in (third, second, first)]
    assert positions == sorted(positions)  # newest first
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    html = unescape(html)
    assert "holdout AP 0.76 (95% interval 0.62–0.88; 120 held-out labels, 14 fraud)" in html
    assert (f"Its AP 0.76 is below model {first.id}'s 0.83 on the same held-out labels, yet the gate let it "
            f"serve: the difference is within the bootstrap noise (the 95% quantile of the resampled differences, "
            f"new minus baseline, is +0.041, not below zero") in html
    assert html.count("yet the gate let it serve") == 1  # not for the first (higher) nor the loser
    assert f"model {second.id} kept: new model AP 0.41 vs 0.76" in html and "no: lost the gate" in html
    assert "AP 0.97 cross-validated on its own training labels (optimistic)" in html
    assert "1,234" in html and "<b>serving</b> since" in html
    assert re.search(r"served \d{4}-\d\d-\d\d \d\d:\d\d to", html)  # the first, until the second began
    page = client.get("/datasets/cc").get_data(as_text=True)
    assert 'href="/admin/datasets/cc/models"' in page


def test_the_models_page_is_for_admins_only(client, dataset, analyst, admin):
    login(client, "ana")
    assert client.get("/admin/datasets/cc/models").status_code == 403
    assert 'href="/admin/datasets/cc/models"' not in client.get("/datasets/cc").get_data(as_text=True)
    login(client, "root")
    assert client.get("/admin/datasets/nope/models").status_code == 404
    empty = client.get("/admin/datasets/cc/models")
    assert empty.status_code == 200 and "No model has been trained yet" in empty.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------------------------
# A real retrain


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_a_real_retrain_records_the_interval_and_the_header_shows_it(client, dataset, analyst, admin, tmp_path):
    dataset.settings = {**dataset.settings, "cv_repeats": 1}
    dataset.save()
    truth = dict(GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item)
                 .where(Item.dataset == dataset).order_by(GroundTruth.item).tuples())
    frauds = [item for item, value in truth.items() if value == "fraud"][:60]
    genuine = [item for item, value in truth.items() if value != "fraud"][:300]
    for item in frauds + genuine:
        Label.create(item=item, value=truth[item], annotator=analyst, source="human")
    Standing.refresh(frauds + genuine)
    summary = retrain(dataset, str(tmp_path))
    version = ModelVersion.get_by_id(summary["model_version"])
    record = version.gate
    held = gate.holdout_mask(frauds + genuine)
    assert record["baseline"] == "cold start" and record["holdout"] == int(held.sum())
    assert record["positives"] == int(held[:len(frauds)].sum()) >= gate.MIN_POSITIVES
    low, high = record["interval"]
    assert 0 <= low <= record["new_ap"] <= high <= 1 and record["level"] == gate.LEVEL
    text = (f"holdout AP {record['new_ap']:.2f} (95% interval {low:.2f}–{high:.2f}; {record['holdout']} held-out "
            f"labels, {record['positives']} fraud)")
    login(client, "ana")
    assert text in _header(client)
    login(client, "root")
    assert text in client.get("/admin/datasets/cc/models").get_data(as_text=True)
