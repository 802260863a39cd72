"""The worker's retrain and queue refill on a real store: model versions and their stored scores, pseudo-labels,
the queue (small real sample)."""
import csv
import os

import numpy as np
import pytest

from labeler.data import exporter
from labeler.store.db import GroundTruth, Item, Label, ModelVersion, QueueEntry, Standing
from labeler.store.files import load_scores
from labeler.store.pool import load_pool
from labeler.store.settings import DEFAULTS, SettingsError, engine_settings
from labeler.worker.refill import refresh_queue
from labeler.worker.retrain import retrain
from models import names, selection


@pytest.fixture(autouse=True)
def quick_selection(dataset):
    """Model selection with 3 folds and 1 repeat, to keep the tests fast."""
    dataset.settings = {**dataset.settings, "cv_folds": 3, "cv_repeats": 1}
    dataset.save()


def _truth(dataset):
    """[(item id, ground-truth label)] of the dataset in item order."""
    return list(GroundTruth.select(GroundTruth.item, GroundTruth.value).join(Item)
                .where(Item.dataset == dataset).order_by(Item.id).tuples())


def _label_from_truth(dataset, user, frauds, genuine, skip_frauds=0, skip_genuine=0):
    """Label ``frauds`` fraud items and ``genuine`` genuine ones (after skipping as many of each) as the truth
    says; returns their item ids."""
    truth = _truth(dataset)
    chosen = ([item for item, value in truth if value == "fraud"][skip_frauds:skip_frauds + frauds]
              + [item for item, value in truth if value == "genuine"][skip_genuine:skip_genuine + genuine])
    for item in chosen:
        Label.create(item=item, value=dict(truth)[item], annotator=user, source="human")
    Standing.refresh(chosen)
    return chosen


def test_without_both_labels_the_queue_is_the_cold_start(dataset, analyst, tmp_path):
    _label_from_truth(dataset, analyst, 0, 5)
    summary = retrain(dataset, str(tmp_path))
    assert summary["stage"].startswith("cold start")
    assert ModelVersion.select().count() == 0
    entries = list(QueueEntry.select().where(QueueEntry.dataset == dataset).order_by(QueueEntry.priority))
    assert len(entries) == 500
    assert {entry.strategy for entry in entries} == {"cold start", "diversity", "exploration"}
    labeled = {label.item_id for label in Label.select()}
    assert not labeled & {entry.item_id for entry in entries}
    assert all(entry.model_version_id is None for entry in entries)
    # the cold start ranks anomalies first: its picks hold many more frauds than the sample's 2.4%
    truth = dict(_truth(dataset))
    cold = [entry.item_id for entry in entries if entry.strategy == "cold start"][:50]
    assert sum(truth[item] == "fraud" for item in cold) >= 5


def test_retrain_serves_a_selected_model_and_queues_by_the_mix(dataset, analyst, tmp_path):
    _label_from_truth(dataset, analyst, 15, 85)
    summary = retrain(dataset, str(tmp_path), seed=0)
    version = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
    assert summary["model_version"] == version.id and version.labels_used == 100
    # 15 frauds: boosting joins the logistic model; without a prequential record yet its logistic part gives the
    # scores and the blend picks the queue (models.prequential)
    assert version.kind == "logistic part" and version.metrics["queue_from_counterpart"] is True
    assert set(version.metrics["candidates"]) == {"blend", "logistic part"}
    assert 0 < version.metrics["candidates"]["blend"]["auprc"] <= 1 and "auprc" not in version.metrics
    # no model file: the version is its stored pool scores (and its twin's held-out scores), beside each other
    assert version.path is None and set(version.digests) == {"scores", "holdout", "counterpart"}
    assert os.path.dirname(version.scores_path) == os.path.dirname(version.holdout_path) == str(tmp_path)
    ids, _ = load_pool(dataset)
    scores = load_scores(version.scores_path, version.digests["scores"])
    assert scores.shape == ids.shape and ((scores >= 0) & (scores <= 1)).all()

    entries = list(QueueEntry.select().where(QueueEntry.dataset == dataset).order_by(QueueEntry.priority))
    assert len(entries) == 500
    counts = {name: sum(entry.strategy == name for entry in entries) for name in ("high risk", "uncertain",
                                                                                 "committee", "exploration")}
    # the default mix gives the committee no share: no committee file is stored
    assert counts == {"high risk": 100, "uncertain": 350, "committee": 0, "exploration": 50}
    assert version.committee_path is None
    assert {entry.model_version_id for entry in entries} == {version.id}
    labeled = {label.item_id for label in Label.select().where(Label.source == "human")}
    assert not labeled & {entry.item_id for entry in entries}
    for entry in entries:
        assert sum(entry.probabilities.values()) == pytest.approx(1.0)
        assert entry.probabilities[entry.suggested] == pytest.approx(entry.probability)
        assert entry.probability >= 0.5
    # the high-risk picks hold most of the unlabeled frauds: far above the 1.8% left in the pool
    truth = dict(_truth(dataset))
    high_risk = [entry.item_id for entry in entries if entry.strategy == "high risk"][:30]
    assert sum(truth[item] == "fraud" for item in high_risk) >= 15

    _label_from_truth(dataset, analyst, 10, 40, skip_frauds=15, skip_genuine=85)
    retrain(dataset, str(tmp_path), seed=0)
    versions = list(ModelVersion.select().order_by(ModelVersion.id))
    assert [v.serving for v in versions] == [False, True]
    assert versions[1].labels_used == 150


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_pseudo_labels_are_written_replaced_and_never_exported(dataset, analyst, tmp_path):
    labeled = _label_from_truth(dataset, analyst, 15, 85)
    retrain(dataset, str(tmp_path), seed=0)
    pseudo = list(Label.effective(dataset, ("pseudo",)))
    assert len(pseudo) > 50  # confident genuine items among the 1,949 unlabeled ones
    assert all(label.annotator_id is None and label.source == "pseudo" for label in pseudo)
    assert not {label.item_id for label in pseudo} & set(labeled)

    out = tmp_path / "labels.csv"
    assert exporter.export(dataset, str(out)) == 100
    with open(out, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 100 and {row["source"] for row in rows} == {"human"}
    assert exporter.export(dataset, str(tmp_path / "all.csv"), include_pseudo=True) == 100 + len(pseudo)

    # a human now labels an item that carried a pseudo-label: the next retrain retracts that pseudo-label
    item = pseudo[0].item_id
    Label.create(item=item, value=dict(_truth(dataset))[item], annotator=analyst, source="human")
    Standing.refresh([item])
    retrain(dataset, str(tmp_path), seed=0)
    standing = {label.item_id for label in Label.effective(dataset, ("pseudo",))}
    assert item not in standing
    assert Label.select().where((Label.kind == "undo") & (Label.source == "pseudo")).count() >= 1
    # the serving model's metrics and label count come from the 101 human labels only
    version = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
    assert version.labels_used == 101 and version.metrics["pseudo_labels"] > 50


def test_pseudo_labels_follow_the_dataset_setting(dataset, analyst, tmp_path):
    dataset.settings = {**dataset.settings, "pseudo_labels": False, "queue_size": 40,
                        "mix": {"high risk": 1.0, "uncertain": 0.0, "exploration": 0.0}}
    dataset.save()
    _label_from_truth(dataset, analyst, 15, 85)
    retrain(dataset, str(tmp_path), seed=0)
    assert Label.select().where(Label.source == "pseudo").count() == 0
    entries = list(QueueEntry.select().where(QueueEntry.dataset == dataset))
    assert len(entries) == 40 and {entry.strategy for entry in entries} == {"high risk"}


def test_refresh_queue_rescores_with_the_serving_model_else_cold_start(dataset, analyst, tmp_path, monkeypatch):
    # a mix with a committee share, and every model counts as weak: the committee picks
    dataset.settings = {**dataset.settings, "mix": {"high risk": 0.2, "uncertain": 0.35, "committee": 0.35,
                                                    "exploration": 0.1}}
    dataset.save()
    monkeypatch.setattr(names, "COMMITTEE_WEAK_BELOW", 1.01)
    assert refresh_queue(dataset, size=30, seed=0) == 30
    assert {entry.strategy for entry in QueueEntry.select()} <= {"cold start", "diversity", "exploration"}
    _label_from_truth(dataset, analyst, 15, 85)
    retrain(dataset, str(tmp_path), seed=0)
    version = ModelVersion.get(ModelVersion.serving == True)  # noqa: E712
    assert refresh_queue(dataset, size=30, seed=0) == 30
    entries = list(QueueEntry.select())
    assert len(entries) == 30 and {entry.model_version_id for entry in entries} == {version.id}
    assert {entry.strategy for entry in entries} == {"high risk", "uncertain", "committee", "exploration"}
    # the committee's picks are the unlabeled items its stored scores rank highest, less the other arms' picks
    ids, _ = load_pool(dataset)
    disagreement = load_scores(version.committee_path, version.digests["committee"])
    position = {item: index for index, item in enumerate(ids.tolist())}
    picked = [position[entry.item_id] for entry in entries if entry.strategy == "committee"]
    others = {position[entry.item_id] for entry in entries if entry.strategy != "committee"}
    labeled = {position[label.item_id] for label in Label.select().where(Label.source == "human")}
    ranked = [index for index in np.argsort(-disagreement, kind="stable") if index not in labeled | others]
    assert len(picked) == 10 and set(picked) <= set(ranked[:20])  # 0.35 of 30; near-duplicates may be skipped
    with open(version.committee_path, "ab") as stream:  # a corrupt committee file: its share goes to uncertain
        stream.write(b"x")
    assert refresh_queue(dataset, size=30, seed=0) == 30
    assert {entry.strategy for entry in QueueEntry.select()} == {"high risk", "uncertain", "exploration"}
    os.remove(version.scores_path)  # a lost scores file: the queue falls back to the cold start until the next retrain
    assert refresh_queue(dataset, size=30, seed=0) == 30
    assert {entry.model_version_id for entry in QueueEntry.select()} == {None}


def test_cross_validation_scores_human_labels_only(dataset, analyst):
    ids, X = load_pool(dataset)
    truth = np.array([value == "fraud" for _, value in _truth(dataset)], dtype=np.int8)
    rng = np.random.default_rng(0)
    human = np.concatenate([rng.choice(np.flatnonzero(truth == 1), 20, replace=False),
                            rng.choice(np.flatnonzero(truth == 0), 80, replace=False)])
    rest = np.setdiff1d(np.arange(len(ids)), human)
    wrong = 1 - truth[rest]  # pseudo-labels that are all wrong still never reach a held-out fold
    metrics, held_p, held_y = selection.cross_validate("logistic", X[human], truth[human], (X[rest], wrong),
                                                       human_weight=5.0, folds=5, repeats=2)
    assert len(held_y) == len(held_p) == 2 * len(human)
    assert sorted(held_y.tolist()) == sorted(np.tile(truth[human], 2).tolist())
    assert metrics["folds"] == 5 and metrics["repeats"] == 2


def test_bad_settings_are_refused_in_one_line(dataset, analyst, tmp_path):
    _label_from_truth(dataset, analyst, 15, 85)
    for settings, message in (({"mix": {"hunch": 1.0}}, "mix: unknown strategy 'hunch'"),
                              ({"uncertainty": "vibes"}, "uncertainty: 'vibes' is not one of"),
                              ({"pseudo_confidence": 0.3}, "pseudo_confidence: must be above 0.5")):
        dataset.settings = {**dataset.settings, **settings}
        dataset.save()
        with pytest.raises(SettingsError, match=message):
            retrain(dataset, str(tmp_path))
        dataset.settings = {key: value for key, value in dataset.settings.items() if key not in settings}
        dataset.save()
    assert ModelVersion.select().count() == 0 and QueueEntry.select().count() == 0


def test_generative_candidates_setting_defaults_to_none_and_refuses_unknown_names(dataset, analyst, tmp_path):
    assert DEFAULTS["generative_candidates"] == []
    assert engine_settings(dataset)["generative_candidates"] == []
    dataset.settings = {**dataset.settings, "generative_candidates": ["latent", "vae_balance", "sgan"]}
    assert engine_settings(dataset)["generative_candidates"] == ["latent", "vae_balance", "sgan"]
    _label_from_truth(dataset, analyst, 15, 85)
    for value, message in ((["latent", "gan"], "dataset 'cc', setting generative_candidates: unknown candidate "
                                               "'gan' \\(known: latent, vae_balance, sgan\\)"),
                           ("latent", "generative_candidates: must be a list of names, got 'latent'")):
        dataset.settings = {**dataset.settings, "generative_candidates": value}
        dataset.save()
        with pytest.raises(SettingsError, match=message):
            retrain(dataset, str(tmp_path))
    assert ModelVersion.select().count() == 0 and QueueEntry.select().count() == 0


@pytest.mark.slow
def test_retrain_with_latent_candidates_records_them_and_serves_their_scores(dataset, analyst, tmp_path):
    dataset.settings = {**dataset.settings, "generative_candidates": ["latent"]}
    dataset.save()
    _label_from_truth(dataset, analyst, 20, 130)
    retrain(dataset, str(tmp_path), seed=0)
    version = ModelVersion.select().order_by(ModelVersion.id.desc()).get()
    candidates = version.metrics["candidates"]
    assert set(candidates) == {"blend", "blend+latent"}
    assert all(0 < candidates[kind]["auprc"] <= 1 for kind in candidates)
    assert candidates["blend+latent"]["device"] == "CPU" or candidates["blend+latent"]["device"].startswith("GPU")
    assert version.serving and version.kind in candidates
    ids, _ = load_pool(dataset)
    scores = load_scores(version.scores_path, version.digests["scores"])
    assert scores.shape == (len(ids),) and np.all((scores >= 0) & (scores <= 1))
    # no synthetic or generated row ever becomes a label: only the 150 human labels and pseudo-labels stand
    assert Label.select().where(Label.source == "human").count() == 150
    assert {label.source for label in Label.select()} <= {"human", "pseudo"}
