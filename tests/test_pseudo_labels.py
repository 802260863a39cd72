"""Pseudo-labels under control: a cap as a share of the pool, switched off they are retracted, their count in the
header, and the item table keeps them apart from human labels."""
import numpy as np
import pytest

from labeler.data.item_table import TableQuery, table_page
from labeler.store.db import Label, ModelVersion
from labeler.store.settings import DEFAULTS, PSEUDO_SHARE, SettingsError, engine_settings
from labeler.worker.retrain import retrain
from models.learner import ActiveLearner
from tests.conftest import login
from tests.test_retraining import HX, label_truth

ENGINE = {key: value for key, value in DEFAULTS.items() if key != "labeling"}


def standing_pseudo(dataset):
    return Label.effective(dataset, ("pseudo",)).count()


def test_the_pseudo_labels_are_capped_at_a_share_of_the_pool():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 3)).astype(np.float32)
    sure = np.full(1000, 0.001)  # every item a confident negative
    for share, expected in ((1.0, 1000), (0.1, 100), (0.0, 0)):
        learner = ActiveLearner(X, np.arange(1000), {**ENGINE, "pseudo_share": share, "pseudo_limit": 20000})
        indices, labels = learner.pseudo(sure, np.arange(1000))
        assert len(indices) == expected and not labels.any()
    capped = ActiveLearner(X, np.arange(1000), {**ENGINE, "pseudo_share": 1.0, "pseudo_limit": 30})
    assert len(capped.pseudo(sure, np.arange(1000))[0]) == 30  # the number still caps too


def test_a_pseudo_share_outside_zero_to_one_is_refused(dataset):
    dataset.settings = {**dataset.settings, "pseudo_share": 1.5}
    with pytest.raises(SettingsError, match="pseudo_share: must be a share of the pool from 0 to 1, got 1.5"):
        engine_settings(dataset)


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_switched_off_the_standing_pseudo_labels_are_retracted_and_the_header_counts_them(app, dataset, analyst,
                                                                                         tmp_path):
    dataset.settings = {**dataset.settings, "cv_repeats": 1}
    dataset.save()
    label_truth(dataset, analyst, frauds=20, genuine=200)
    first = retrain(dataset, str(tmp_path))
    pool = dataset.items().count()
    written = standing_pseudo(dataset)
    assert 0 < written <= int(PSEUDO_SHARE * pool) and first["pseudo_added"] == written
    assert ModelVersion.get_by_id(first["model_version"]).metrics["pseudo_standing"] == written
    client = app.test_client()
    login(client, "ana")
    status = client.get("/datasets/cc/label/status", headers=HX).get_data(as_text=True)
    assert f"{written:,} pseudo-labels" in status

    items = table_page(dataset, TableQuery(), 2000).items
    pseudo_items = [item for item in items if item.pseudo_label is not None]
    # a human-labeled item is never pseudo-labeled
    assert pseudo_items and all(item.human_label is None for item in pseudo_items)
    human = [item for item in items if item.human_label is not None]
    assert human and all(item.human_label.source == "human" for item in human)
    table = client.get("/datasets/cc").get_data(as_text=True)
    assert "pseudo-label</th>" in table

    dataset.settings = {**dataset.settings, "pseudo_labels": False}
    dataset.save()
    Label.create(item=pseudo_items[0].id, value="genuine", annotator=analyst, source="human")
    second = retrain(dataset, str(tmp_path))
    assert standing_pseudo(dataset) == 0 and second["pseudo_retracted"] == written
    assert ModelVersion.get_by_id(second["model_version"]).metrics["pseudo_standing"] == 0
