"""The prequential choice between the binary blend and its logistic part (models.prequential): the record, the
learner's choice, the per-feature penalty, and the product's record kept across retrains (labeler.worker.prequential)
on the real sample."""
import numpy as np
import pytest
from markupsafe import escape

from labeler.store.db import Item, Label, Lease, ModelVersion, PrequentialScore, QueueEntry, Standing
from labeler.store.files import load_scores, save_scores
from labeler.store.pool import load_pool
from labeler.worker.prequential import record_labels, record_of
from labeler.worker.refill import refresh_queue
from labeler.worker.retrain import retrain
from labeler.store.settings import DEFAULTS as DEFAULT_SETTINGS
from labeler.web.screen import pick_reason
from models import prequential, weak
from models.learner import ActiveLearner
from models.names import STRATEGY_WHY, STRATEGY_WHY_BLEND_PICKED
from tests.conftest import login
from tests.test_retraining import label_truth, truth_of


def test_the_record_decides_only_with_enough_of_each_class_and_by_average_precision():
    record = prequential.Record()
    record.add([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3], [0.1, 0.9, 0.8, 0.7])
    assert record.figures() == {"labels": 4, "positives": 1, "blend_ap": None, "logistic_ap": None}
    assert not record.prefers_logistic() and not record.trusts_blend()
    truth = [1] * 5 + [0] * 5
    record = prequential.Record()
    record.add(truth, np.linspace(0, 1, 10), np.linspace(1, 0, 10))  # the logistic part ranks every positive first
    figures = record.figures()
    assert figures["labels"] == 10 and figures["positives"] == 5 and figures["logistic_ap"] == 1.0 > figures["blend_ap"]
    assert record.prefers_logistic() and not record.prefers_logistic(min_each=6)
    assert not record.trusts_blend(min_each=5)
    # the blend is trusted only with SERVE_EACH labels of each class, and when it ranked them at least as well
    record = prequential.Record()
    record.add(truth, np.linspace(1, 0, 10), np.linspace(0, 1, 10))
    assert not record.prefers_logistic() and record.trusts_blend(min_each=5)
    assert prequential.SERVE_EACH > 5 and not record.trusts_blend()
    record.add([1] * 5 + [0] * 5, [0.9] * 5 + [0.1] * 5, [0.9] * 5 + [0.1] * 5)  # ties: at least as well
    assert prequential.SERVE_EACH == 10 and record.trusts_blend()
    with pytest.raises(ValueError, match="as many scores as labels"):
        record.add([1], [0.5, 0.5], [0.5])


def test_the_binary_penalty_is_a_total_shared_by_the_features():
    assert weak.logistic_c(85) == pytest.approx(0.01) and weak.logistic_c(4) == pytest.approx(0.2125)
    assert weak.logistic_c(4, n_classes=10) == weak.LOGISTIC_C_CLASSES
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(np.int8)
    assert weak.fit(weak.LOGISTIC, X, y).estimators[0][-1].C == pytest.approx(0.17)


def _blobs(seed=0, n=1500):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(np.int8)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[:, 0] += 2.0 * y
    return X, y


def test_the_learner_serves_the_logistic_part_until_the_record_trusts_the_blend():
    X, y = _blobs()
    settings = {**DEFAULT_SETTINGS, "pseudo_labels": False, "cv_repeats": 1}
    labeled = np.concatenate([np.flatnonzero(y == 1)[:15], np.flatnonzero(y == 0)[:60]])
    learner = ActiveLearner(X, np.arange(len(y)), settings)
    served = learner.train(labeled, y[labeled])
    # an empty record: the logistic part gives the scores, uncalibrated, and the calibrated blend picks the queue
    assert served.kind == weak.LOGISTIC_PART and served.queue_from_other
    assert served.metrics[weak.LOGISTIC_PART]["prequential"] == {
        "labels": 0, "positives": 0, "blend_ap": None, "logistic_ap": None, "serve_each": prequential.SERVE_EACH}
    pool = learner.pool_features()
    blend_model = learner.selected.model
    assert blend_model.kind == weak.BLEND and blend_model.calibration != (1.0, 0.0)
    assert np.allclose(served.model.predict(pool), weak.positive_probability(served.model.estimators[0], pool))
    assert served.queue_model().kind == weak.BLEND and served.queue_model().other().kind == weak.LOGISTIC_PART
    with pytest.raises(ValueError, match="has no counterpart"):
        weak.WeakModel(weak.LOGISTIC, served.model.estimators[:1]).other()
    assert np.allclose(learner.score(served.queue_model()), blend_model.predict(pool))
    assert np.allclose(served.model.counterpart(pool), blend_model.predict(pool))

    # the labels given next are scored by the blend and its logistic part, before they are trained on
    more = np.concatenate([labeled, np.flatnonzero(y == 1)[15:25], np.flatnonzero(y == 0)[60:100]])
    new = more[len(labeled):]
    rows = learner.pool_features()[new]
    blend, logistic = blend_model.raw(rows), weak.positive_probability(served.model.estimators[0], rows)
    again = learner.train(more, y[more])
    assert learner.prequential.truth == y[new].tolist()
    assert np.allclose(learner.prequential.blend, blend) and np.allclose(learner.prequential.logistic, logistic)
    figures = learner.prequential.figures()
    assert figures["positives"] == 10
    assert again.kind == (weak.LOGISTIC_PART if figures["logistic_ap"] > figures["blend_ap"] else weak.BLEND)

    # a record in which the logistic part ranked better makes it serve, uncalibrated, from the blend's own part
    learner.prequential = prequential.Record()
    learner.prequential.add([1] * 5 + [0] * 5, np.linspace(0, 1, 10), np.linspace(1, 0, 10))
    part = learner.train(more, y[more])
    assert part.kind == weak.LOGISTIC_PART and part.metrics[weak.LOGISTIC_PART]["prequential"]["logistic_ap"] == 1.0
    assert not part.queue_from_other and part.queue_model() is part.model  # the part picks the queue too
    assert np.allclose(part.model.predict(pool), weak.positive_probability(part.model.estimators[0], pool))
    blend_model = learner.selected.model
    assert np.allclose(part.model.counterpart(pool), blend_model.predict(pool))
    # the blend ranked better, but on too few labels to serve: it picks the queue only
    learner.prequential = prequential.Record()
    learner.prequential.add([1] * 5 + [0] * 5, np.linspace(1, 0, 10), np.linspace(0, 1, 10))
    early = learner.train(more, y[more])
    assert early.kind == weak.LOGISTIC_PART and early.queue_from_other
    learner.prequential.add([1] * 5 + [0] * 5, np.linspace(1, 0, 10), np.linspace(0, 1, 10))
    trusted = learner.train(more, y[more])
    assert trusted.kind == weak.BLEND and not trusted.queue_from_other and trusted.queue_model() is trusted.model


def _label_with_version(dataset, user, version, items, truth):
    for item_id in items:
        Label.create(item=item_id, value=truth[item_id], annotator=user, source="human", model_version=version.id,
                     strategy="uncertain")
    Standing.refresh(items)


def _unlabeled(dataset, truth, positive, count, skip):
    labeled = {item for item, in Label.select(Label.item).join(Item).where(Item.dataset == dataset).tuples()}
    return [item for item, value in truth.items()
            if (value == dataset.positive_label) == positive and item not in labeled][skip:skip + count]


def test_the_retrain_keeps_the_record_across_versions_and_serves_what_it_says(app, quick, analyst, admin, tmp_path):
    """Each version of the pair stores the other's pool scores beside its own; labels carrying that version get
    both as their record. An empty record serves the logistic part, the blend picking the queue; a record that
    prefers the logistic part makes it pick too, and the record reads the pair the right way round each time."""
    truth = truth_of(quick)
    label_truth(quick, analyst, frauds=20, genuine=200)
    first = ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"])
    assert first.kind == weak.LOGISTIC_PART and set(first.digests) == {"scores", "holdout", "counterpart"}
    assert first.metrics["queue_from_counterpart"] is True
    assert first.metrics["prequential"] == {"labels": 0, "positives": 0, "blend_ap": None, "logistic_ap": None,
                                            "serve_each": prequential.SERVE_EACH}
    ids, _ = load_pool(quick)
    position = {item: index for index, item in enumerate(ids.tolist())}
    part = load_scores(first.scores_path, first.digests["scores"])
    blend = load_scores(first.counterpart_path, first.digests["counterpart"])
    assert not np.allclose(part, blend)
    # the suggestions are the served scores
    entries = list(QueueEntry.select().where(QueueEntry.dataset == quick))
    assert entries and all(np.isclose(max(part[position[entry.item_id]], 1 - part[position[entry.item_id]]),
                                      entry.probability, atol=1e-6) for entry in entries)

    given = _unlabeled(quick, truth, True, 6, 0) + _unlabeled(quick, truth, False, 30, 0)
    _label_with_version(quick, analyst, first, given, truth)
    assert record_labels(quick, ids) == len(given) and record_labels(quick, ids) == 0  # once per item
    rows = {row.item_id: row for row in PrequentialScore.select().where(PrequentialScore.dataset == quick)}
    assert set(rows) == set(given) and {row.model_version for row in rows.values()} == {first.id}
    assert all(np.isclose(rows[item].blend, blend[position[item]]) for item in given)
    assert all(np.isclose(rows[item].logistic, part[position[item]]) for item in given)
    client = app.test_client()
    login(client, "root")
    page = client.get(f"/admin/datasets/{quick.name}/models").get_data(as_text=True)
    assert ("The logistic part of the blend alone gives the scores, and the blend picks the queue: the blend&#39;s "
            "scores serve once the labels scored before they were given hold 10 of each label and it ranked them at "
            "least as well (now 0 labels, 0 of them positive).") in page

    # the record, rewritten so that the logistic part ranked the new labels perfectly, picks the part for both
    for item in given:
        positive = truth[item] == quick.positive_label
        PrequentialScore.update(logistic=0.9 if positive else 0.1, blend=0.1 if positive else 0.9).where(
            PrequentialScore.item == item).execute()
    second = ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"])
    assert second.serving and second.kind == weak.LOGISTIC_PART, second.gate
    assert "queue_from_counterpart" not in second.metrics
    assert second.metrics["prequential"] == {"labels": len(given), "positives": 6, "blend_ap": pytest.approx(6 / 36),
                                             "logistic_ap": 1.0, "serve_each": prequential.SERVE_EACH}
    served = load_scores(second.scores_path, second.digests["scores"])
    blend = load_scores(second.counterpart_path, second.digests["counterpart"])
    assert not np.allclose(served, blend)
    page = client.get(f"/admin/datasets/{quick.name}/models").get_data(as_text=True)
    assert ("The logistic part of the blend alone: on the 36 labels scored before they were given, the logistic "
            "part ranked at AP 1.00 and the blend at 0.17.") in page

    later = _unlabeled(quick, truth, True, 3, 0) + _unlabeled(quick, truth, False, 10, 0)
    _label_with_version(quick, analyst, second, later, truth)
    assert record_labels(quick, ids) == len(later)
    rows = {row.item_id: row for row in PrequentialScore.select().where(PrequentialScore.model_version == second.id)}
    assert all(np.isclose(rows[item].blend, blend[position[item]]) for item in later)
    assert all(np.isclose(rows[item].logistic, served[position[item]]) for item in later)
    labeled = np.array([position[item] for item in given + later])
    record = record_of(quick, ids, labeled, np.array([truth[ids[i]] == quick.positive_label for i in labeled]))
    assert len(record.truth) == len(given) + len(later) and sum(record.truth) == 9


def test_the_refill_picks_by_the_counterpart_when_the_version_says_so(quick, analyst, tmp_path):
    """A version whose blend picks the queue (queue_from_counterpart) has its refills pick by the counterpart
    file, with the served scores as suggestions; a corrupt counterpart file leaves the served scores to pick."""
    label_truth(quick, analyst, frauds=20, genuine=200)
    version = ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"])
    assert version.metrics["queue_from_counterpart"] is True
    ids, _ = load_pool(quick)
    labeled = set(item for item, in Label.select(Label.item).join(Item).where(Item.dataset == quick).tuples())
    unlabeled = [index for index, item in enumerate(ids.tolist()) if item not in labeled]
    marked = np.random.default_rng(0).choice(unlabeled, 6, replace=False)
    hunted = np.zeros(len(ids), dtype=np.float32)
    hunted[marked] = 1.0  # the counterpart says: these six are the riskiest items of the pool
    digest = save_scores(hunted, version.counterpart_path)
    ModelVersion.update(digests={**version.digests, "counterpart": digest}).where(
        ModelVersion.id == version.id).execute()
    assert refresh_queue(quick, size=30, seed=0) == 30
    entries = list(QueueEntry.select().where(QueueEntry.dataset == quick))
    high_risk = {entry.item_id for entry in entries if entry.strategy == "high risk"}
    assert high_risk == set(ids[marked].tolist())
    served = load_scores(version.scores_path, version.digests["scores"])
    position = {item: index for index, item in enumerate(ids.tolist())}

    def suggested_from_served(entries):
        return all(np.isclose(max(served[position[entry.item_id]], 1 - served[position[entry.item_id]]),
                              entry.probability, atol=1e-6) for entry in entries)

    assert suggested_from_served(entries)
    with open(version.counterpart_path, "ab") as stream:  # its checksum no longer matches
        stream.write(b"0")
    assert refresh_queue(quick, size=30, seed=0) == 30
    entries = list(QueueEntry.select().where(QueueEntry.dataset == quick))
    high_risk = {entry.item_id for entry in entries if entry.strategy == "high risk"}
    assert len(high_risk) == 6 and not high_risk & set(ids[marked].tolist())
    assert suggested_from_served(entries)


def test_a_label_without_a_version_or_after_another_label_is_not_recorded(app, quick, analyst, admin, tmp_path):
    """Only an item's first human label counts, and only when it carried a version that stored both scores."""
    truth = truth_of(quick)
    label_truth(quick, analyst, frauds=20, genuine=200)
    first = ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"])
    ids, _ = load_pool(quick)
    plain, late = _unlabeled(quick, truth, False, 2, 0)
    Label.create(item=plain, value=truth[plain], annotator=analyst, source="human")  # from the item table
    Label.create(item=late, value=truth[late], annotator=analyst, source="human")
    Label.create(item=late, value=truth[late], annotator=admin, source="human", model_version=first.id)
    Standing.refresh([plain, late])
    assert record_labels(quick, ids) == 0


def test_the_screen_says_the_blend_picked_while_its_logistic_part_suggests(app, quick, analyst, tmp_path):
    """An item the blend picked (high risk or uncertain) for a version whose logistic part serves is shown with
    that reason; without the version's flag the reason is the plain one."""
    label_truth(quick, analyst, frauds=20, genuine=200)
    version = ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"])
    assert version.metrics["queue_from_counterpart"] is True
    first = QueueEntry.select().where(QueueEntry.dataset == quick).order_by(QueueEntry.priority).first()
    assert first.strategy in STRATEGY_WHY_BLEND_PICKED  # the mix's first slot: high risk
    client = app.test_client()
    login(client, "ana")
    page = client.get(f"/datasets/{quick.name}/label").get_data(as_text=True)
    lease = Lease.get(Lease.user == analyst)
    assert lease.item_id == first.item_id and lease.model_version_id == version.id
    assert f"picked as <b>{first.strategy}</b>: {escape(STRATEGY_WHY_BLEND_PICKED[first.strategy])}" in page
    assert pick_reason(Lease(strategy="exploration", model_version=version.id)) == STRATEGY_WHY["exploration"]

    ModelVersion.update(metrics={**version.metrics, "queue_from_counterpart": False}).where(
        ModelVersion.id == version.id).execute()
    assert pick_reason(lease) == STRATEGY_WHY[first.strategy]
