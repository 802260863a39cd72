"""K labels end to end: the models give a probability for every label, the strategies, pseudo-labels and gate
work over K classes, and the product (retrain, queue, screen, header) shows real probabilities with keys that
mean the same label on every screen. Two real label sets: the digits (ten classes, no positive class) and the
simulated transactions' fraud typologies (genuine plus four fraud types, every type positive)."""
import datetime
import gzip
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from labeler.data.importer import default_positive_labels, import_file
from labeler.labeling import decisions, leases
from labeler.store.db import GroundTruth, Item, Label, Lease, QueueEntry, Standing, utcnow
from labeler.store.files import load_scores
from labeler.store.serving import serving_scores
from labeler.store.settings import update_labeling_settings
from labeler.web import screen as screen_view
from labeler.worker.refill import refresh_queue
from labeler.worker.retrain import retrain
from labeler.worker.simulate import run as simulate_run
from labeler.store.settings import DEFAULTS
from models import gate, pseudo, selection, strategies, weak
from tests.conftest import TRANSACTIONS_SAMPLE, csrf_token_of, login

HX = {"HX-Request": "true"}
TYPES = ["genuine", "large_amount", "compromised_terminal", "compromised_card", "card_testing"]
ENGINE = {key: value for key, value in DEFAULTS.items() if key != "labeling"}


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data / 16).astype(np.float32), data.target.astype(np.int64)


# ---- the models, numpy in and out --------------------------------------------------------------------------


def test_a_multi_class_model_gives_every_label_a_probability_and_zero_to_a_label_never_trained_on(digits):
    X, y = digits
    keep = y != 9  # no label of class 9 yet
    model = weak.fit(weak.LOGISTIC, X[keep][:300], y[keep][:300], n_classes=10)
    probabilities = model.predict(X[:50])
    assert probabilities.shape == (50, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0) and np.all(probabilities[:, 9] == 0)
    assert np.mean(probabilities.argmax(axis=1) == y[:50]) > 0.8
    blend = weak.fit(weak.BLEND, X[:300], y[:300], n_classes=10)
    assert blend.predict(X[:5]).shape == (5, 10) and len(blend.estimators) == 2


def test_selection_over_k_classes_measures_macro_average_precision_and_calibrates_each_class(digits):
    X, y = digits
    chosen = selection.select(X[:200], y[:200], folds=3, repeats=1, n_classes=10)
    metrics = chosen.metrics[chosen.kind]
    assert metrics["measure"] == "macro average precision" and 0.8 < metrics["auprc"] <= 1.0
    assert len(chosen.model.calibration) == 10
    assert set(chosen.metrics) == {weak.LOGISTIC, weak.BLEND}  # two classes have 10 labels: boosting competes
    assert np.allclose(chosen.model.predict(X[200:210]).sum(axis=1), 1.0)
    one_each = selection.select(X[:10], y[:10], n_classes=10)  # single labels: nothing to measure, still a model
    assert one_each.metrics[weak.LOGISTIC]["auprc"] is None and one_each.model.predict(X[:3]).shape == (3, 10)


def test_uncertainty_over_k_classes_least_confidence_margin_and_entropy():
    p = np.array([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [0.9, 0.05, 0.05]])
    assert np.allclose(strategies.least_confidence(p), [0.5, 0.66, 0.1])
    assert np.allclose(strategies.margin(p), [0.8, 0.99, 0.15])
    assert np.argmax(strategies.entropy(p)) == 1 and np.argmin(strategies.entropy(p)) == 2
    # two classes given as (n, 2) rank as the binary P(positive) does
    binary = np.array([0.1, 0.45, 0.8])
    for measure in (strategies.least_confidence, strategies.margin, strategies.entropy):
        assert np.allclose(measure(np.column_stack([1 - binary, binary])), measure(binary))


def test_high_risk_is_the_highest_probability_of_any_positive_label_and_nothing_without_one():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=400)
    z = rng.normal(size=(400, 3)).astype(np.float32)
    mix = {"high risk": 1.0, "uncertain": 0.0, "exploration": 0.0}
    picks = strategies.plan_batch(p, z, np.arange(400), 10, mix, rng, positives=[2, 3])
    riskiest = np.argsort(-p[:, [2, 3]].max(axis=1))[:10]
    assert {index for index, _ in picks} == set(riskiest.tolist())
    assert {name for _, name in picks} == {"high risk"}
    none = strategies.plan_batch(p, z, np.arange(400), 10, mix, rng, positives=[])  # the digits: no positive
    assert {name for _, name in none} == {"uncertain"}


def test_pseudo_labels_over_k_classes_take_confident_items_positive_classes_first():
    p = np.array([[0.995, 0.004, 0.001], [0.002, 0.997, 0.001], [0.6, 0.3, 0.1], [0.001, 0.001, 0.998]])
    indices, labels = pseudo.choose_classes(p, np.arange(4), np.arange(4), 0.99, 10, positives=[2])
    assert indices.tolist() == [3, 0, 1] and labels.tolist() == [2, 0, 1]
    indices, labels = pseudo.choose_classes(p, np.arange(4), np.arange(4), 0.99, 10, positives=[2],
                                            include_positives=False)
    assert indices.tolist() == [0, 1] and labels.tolist() == [0, 1]


def test_the_gate_compares_k_class_models_by_macro_average_precision_with_its_noise():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 40)
    good = np.eye(3)[y] * 0.8 + rng.random((120, 3)) * 0.2
    noise = rng.dirichlet(np.ones(3), size=120)
    worse = gate.compare_classes(y, noise, good, positives=[1, 2])
    assert not worse.passed and "macro AP" in worse.reason and worse.positives == 80
    assert gate.compare_classes(y, good, noise).passed
    too_few = gate.compare_classes(np.array([0, 1, 2, 0]), noise[:4], good[:4])
    assert too_few.passed and too_few.bound is None and "not compared" in too_few.reason


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_simulated_loop_over_the_digits_learns_all_ten(digits):
    X, y = digits
    rows = simulate_run(X, y, "default", 60, 20, 0, {**ENGINE, "uncertainty": "margin"}, n_classes=10,
                        positives=())
    assert [row["labels"] for row in rows] == [20, 40, 60]
    assert rows[-1]["accuracy"] > 0.7 and sum(rows[-1]["found"]) == 60
    assert min(rows[-1]["found"]) >= 1  # the representatives and the margin reached every class


# ---- the product -------------------------------------------------------------------------------------------


def test_default_positive_labels():
    assert default_positive_labels(["genuine", "fraud", "unsure"]) == ["fraud"]
    assert default_positive_labels(TYPES) == TYPES[1:]
    assert default_positive_labels(["ok", "bad"]) == ["bad"]
    assert default_positive_labels([str(digit) for digit in range(10)]) == []


@pytest.fixture(scope="module")
def typology_csv(tmp_path_factory):
    """The first 3,000 transactions of the bundled sample plus all of its frauds, scenario codes as the label."""
    with gzip.open(TRANSACTIONS_SAMPLE, "rt") as stream:
        frame = pd.read_csv(stream)
    frame = pd.concat([frame.iloc[:3000], frame.iloc[3000:][frame["scenario"].iloc[3000:] > 0]])
    path = tmp_path_factory.mktemp("typologies") / "typologies.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def typologies(app, typology_csv):
    return import_file(typology_csv, "types", label_column="scenario", labels=TYPES, id_column="transaction_id",
                       time_column="timestamp", entity_columns=["card_id", "merchant_id"],
                       ignore=["is_fraud"]).dataset


def _label_from_truth(dataset, user, per_label):
    """Human labels equal to the ground truth for the first ``per_label`` items of each label."""
    truth = (GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item)
             .where(Item.dataset == dataset).order_by(GroundTruth.item).tuples())
    taken = {}
    for item, value in truth:
        if taken.get(value, 0) < per_label:
            taken[value] = taken.get(value, 0) + 1
            Label.create(item=item, value=value, annotator=user, source="human")
            Standing.refresh([item])
    return taken


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_fraud_typologies_train_a_k_class_model_whose_queue_holds_real_probabilities(typologies, analyst,
                                                                                     tmp_path):
    assert typologies.labels == TYPES and typologies.positive_labels == TYPES[1:]
    assert _label_from_truth(typologies, analyst, 30) == {label: 30 for label in TYPES}
    summary = retrain(typologies, str(tmp_path))
    assert summary["serving"], summary
    source = serving_scores(typologies, pool_size=Item.select().where(Item.dataset == typologies).count())
    assert source.scores.shape[1] == 5 and np.allclose(source.scores.sum(axis=1), 1.0, atol=1e-4)
    assert summary["gate"]["reason"].startswith("macro AP")
    entries = list(QueueEntry.select().where(QueueEntry.dataset == typologies))
    assert entries
    for entry in entries[:50]:
        assert set(entry.probabilities) == set(TYPES)
        assert abs(sum(entry.probabilities.values()) - 1.0) < 1e-3
        best = max(entry.probabilities, key=entry.probabilities.get)
        assert entry.suggested == best and entry.probability == pytest.approx(entry.probabilities[best], abs=1e-5)
    assert len({entry.suggested for entry in entries}) > 1  # not one label for everything
    stored = load_scores(source.version.scores_path, source.version.digests["scores"])
    assert stored.shape == source.scores.shape


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_screen_lists_the_alternatives_by_probability_with_the_same_key_for_each_label(app, typologies,
                                                                                         analyst, tmp_path):
    _label_from_truth(typologies, analyst, 30)
    retrain(typologies, str(tmp_path))
    user = analyst
    client = app.test_client()
    login(client, "ana")
    keys_seen = {}
    for _ in range(4):
        html = client.get("/datasets/types/label").get_data(as_text=True)
        lease = leases.current_lease(typologies, user)
        view = screen_view.screen(typologies, lease)
        probabilities = [p for _, p in view["alternatives"]]
        assert probabilities == sorted(probabilities, reverse=True) and all(p is not None for p in probabilities)
        assert sum(probabilities) + view["probability"] == pytest.approx(1.0, abs=1e-3)
        for label in TYPES:
            direct = re.search(rf'value="label:{label}" class="direct" data-key="(\d)"', html).group(1)
            keys_seen.setdefault(label, set()).add(direct)
            if label != view["suggested"]:
                panel = re.search(rf'value="reject:{label}" data-key="(\d)"', html).group(1)
                assert panel == direct  # one key per label, in the reject panel too
        token = csrf_token_of(html)
        client.post(f"/datasets/types/label/{lease.item_id}", headers=HX,
                    data={"csrf_token": token, "decision": f"label:{TYPES[0]}"})
    assert keys_seen == {label: {str(position + 1)} for position, label in enumerate(TYPES)}


def test_every_fraud_type_counts_as_fraud_in_the_header_and_the_session(app, typologies, analyst):
    refresh_queue(typologies)
    for label in ("card_testing", "large_amount", "genuine"):
        lease = leases.next_item(typologies, analyst)
        reason = None if label == "genuine" else "card testing"
        outcome, _ = decisions.decide(typologies, analyst, lease.item_id, f"label:{label}", reason=reason)
        assert outcome.kind == "recorded"
    assert screen_view.dataset_status(typologies)["frauds"] == 2
    assert decisions.session_stats(typologies, analyst, Label.select().first().created_at)["frauds"] == 2
    client = app.test_client()
    login(client, "ana")
    html = client.get("/datasets/types/label/status", headers=HX).get_data(as_text=True)
    assert "<b>2</b> fraud in total" in html
    with pytest.raises(decisions.LabelingError, match="goes with 'large_amount'"):
        lease = leases.next_item(typologies, analyst)
        decisions.decide(typologies, analyst, lease.item_id, "label:genuine", reason="card testing")


@pytest.fixture
def digit_set(app, tmp_path, digits):
    X, y = digits
    frame = pd.DataFrame(X[:600], columns=[f"p{i}" for i in range(64)])
    frame["digit"] = y[:600]
    path = tmp_path / "digits.csv"
    frame.to_csv(path, index=False)
    return import_file(str(path), "cc", label_column="digit").dataset


def test_digits_without_a_model_get_no_suggestion_and_keys_that_are_the_digits(app, digit_set, analyst):
    assert digit_set.labels == [str(digit) for digit in range(10)] and digit_set.positive_labels == []
    refresh_queue(digit_set)
    assert {entry.strategy for entry in QueueEntry.select()} == {"cold start"}
    client = app.test_client()
    login(client, "ana")
    html = client.get("/datasets/cc/label").get_data(as_text=True)
    assert "No model has scored this item yet" in html and 'value="accept"' not in html
    for digit in range(10):
        assert f'value="label:{digit}" class="direct" data-key="{digit}"' in html
    assert "found</span>" not in html and "in total</span>" in html  # no fraud count for a set without fraud


def test_requeue_brings_a_digit_back_with_the_next_most_likely_label_never_a_rejected_one(app, digit_set, analyst,
                                                                                        tmp_path):
    _label_from_truth(digit_set, analyst, 8)
    assert retrain(digit_set, str(tmp_path))["serving"]
    update_labeling_settings(digit_set, {"reject_mode": "requeue"})
    current = leases.next_item(digit_set, analyst)
    item = current.item_id
    ranked = sorted(current.probabilities, key=lambda label: -current.probabilities[label])
    for expected in ranked[:3]:
        assert current.item_id == item and current.suggested == expected
        outcome, following = decisions.decide(digit_set, analyst, item, "reject")
        assert outcome.kind == "deferred", outcome.message
        Lease.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(Lease.item == item).execute()
        _, current = decisions.decide(digit_set, analyst, following.item_id, "label:0")  # the deferred one is next
    assert Lease.get(Lease.item == item).rejected == ranked[:3]
    assert current.item_id == item and current.suggested == ranked[3]


def test_the_import_command_names_the_positive_labels_and_refuses_one_outside_the_set(runner, typology_csv):
    options = ["--label-column", "scenario", "--labels", ",".join(TYPES), "--id-column", "transaction_id",
               "--ignore", "is_fraud", "--exclude", "card_id", "--exclude", "merchant_id", "--exclude", "timestamp"]
    wrong = runner.invoke(args=["import", typology_csv, "--dataset", "t", *options, "--positive-labels", "fraud"])
    assert wrong.exit_code == 1 and len(wrong.output.strip().splitlines()) == 1
    assert "positive label(s) fraud are not in the label set genuine, large_amount" in wrong.output
    chosen = runner.invoke(args=["import", typology_csv, "--dataset", "t", *options,
                                 "--positive-labels", "card_testing,large_amount"])
    assert chosen.exit_code == 0, chosen.output
    stats = runner.invoke(args=["stats", "--dataset", "t"])
    assert "counted as fraud: large_amount, card_testing" in stats.output


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_header_names_the_k_label_measure(app, typologies, analyst, tmp_path):
    _label_from_truth(typologies, analyst, 30)
    retrain(typologies, str(tmp_path))
    client = app.test_client()
    login(client, "ana")
    html = client.get("/datasets/types/label/status", headers=HX).get_data(as_text=True)
    assert re.search(r"holdout macro AP \d\.\d\d \(95% interval \d\.\d\d–\d\.\d\d; 27 held-out labels, "
                     r"22 fraud\)", html)
    assert "150 labels" in html
