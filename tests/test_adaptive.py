"""The adaptive loop (models.adaptive, the ``adaptive`` setting): the bandit's arithmetic, the cold start's
handover and wider search, diversity picks, reproducibility and the strategy names recorded, and the worker
rebuilding the bandit from the label log on a real store."""
import math

import numpy as np
import pytest

from labeler.labeling import decisions, leases
from labeler.store.db import Label, ModelVersion
from labeler.store.pool import load_pool
from labeler.store.settings import DEFAULTS, engine_settings
from labeler.worker.refill import learner_for, replay_picks
from labeler.worker.retrain import retrain
from models import adaptive
from models.learner import ActiveLearner
from tests.conftest import login
from tests.test_retraining import label_truth, truth_of
from models.names import (ADAPTIVE_ARMS, COLD_START, DIVERSITY, EXPLORATION, HIGH_RISK, UNCERTAIN,
                          WIDEN_AFTER, WIDER_SEARCH)


def blobs(per=60, centres=((0, 0), (10, 0), (0, 10), (10, 10)), seed=0):
    """Four tight, well-separated clusters in 2-D (after robust scaling still apart): (points, cluster of each)."""
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.normal(centre, 0.3, size=(per, 2)) for centre in centres]).astype(np.float32)
    return points, np.repeat(np.arange(len(centres)), per)


def settings(**changes):
    return {**DEFAULTS, "adaptive": True, **changes}


def test_bandit_arithmetic_on_a_fixed_reward_sequence():
    bandit = adaptive.Bandit(arms=("a", "b", "c"), rate=4.0, floor=0.05, decay=0.7)
    prior = {"a": 0.5, "b": 0.3, "c": 0.2}
    # nothing rewarded yet: the prior alone, floored
    assert bandit.shares(prior) == pytest.approx({arm: 0.05 + 0.85 * share for arm, share in prior.items()})
    bandit.update({"a": [1.0, 1.0]})
    bandit.update({"a": [0.0], "b": [0.5, 0.1]})
    assert bandit.value["a"] == pytest.approx(0.7 * 1.0 + 0.3 * 0.0)
    assert bandit.value["b"] == pytest.approx(0.3)
    assert bandit.value["c"] is None and bandit.pulls == {"a": 3, "b": 2, "c": 0}
    # c was never rewarded: it counts at the mean of the others, 0.5
    values = {"a": 0.7, "b": 0.3, "c": 0.5}
    weights = {arm: prior[arm] * math.exp(4.0 * (values[arm] - 0.7)) for arm in prior}
    total = sum(weights.values())
    shares = bandit.shares(prior)
    assert shares == pytest.approx({arm: 0.05 + 0.85 * weight / total for arm, weight in weights.items()})
    assert sum(shares.values()) == pytest.approx(1.0)
    assert min(shares.values()) >= 0.05
    # an arm with no prior share gets none
    assert set(bandit.shares({"a": 1.0, "b": 0.0})) == {"a"}


def test_counts_follow_the_shares():
    assert adaptive.counts_of(10, {"a": 0.55, "b": 0.25, "c": 0.2}) == {"a": 6, "b": 2, "c": 2}
    assert sum(adaptive.counts_of(7, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}).values()) == 7


def test_the_cold_start_hands_over_at_both_classes_and_widens_without_positives():
    assert not adaptive.handover([0, 0, 0])
    assert adaptive.handover([0, 1, 0])
    assert adaptive.cold_start_shares(0, 0) == adaptive.COLD_SHARES
    assert adaptive.cold_start_shares(adaptive.WIDEN_AFTER - 1, 0) == adaptive.COLD_SHARES
    assert adaptive.cold_start_shares(adaptive.WIDEN_AFTER, 0) == adaptive.WIDER_SHARES
    assert adaptive.cold_start_shares(500, 3) == adaptive.COLD_SHARES

    points, _ = blobs()
    learner = ActiveLearner(points, np.arange(len(points)), settings(), seed=1)
    first = learner.pick(None, np.arange(len(points)), 10)
    assert {name for _, name in first} == {COLD_START, DIVERSITY, EXPLORATION}
    # WIDEN_AFTER labels and still no model (one class): the anomaly score is dropped, the search widens
    unlabeled = np.arange(adaptive.WIDEN_AFTER, len(points))
    wider = learner.pick(None, unlabeled, 10)
    assert {name for _, name in wider} == {WIDER_SEARCH, EXPLORATION}
    assert set(index for index, _ in wider) <= set(unlabeled.tolist())
    # a model: the bandit's arms take over
    p = np.linspace(0.01, 0.9, len(points))
    mixed = learner.pick(p, unlabeled, 20)
    assert {name for _, name in mixed} <= set(ADAPTIVE_ARMS)
    assert {UNCERTAIN, HIGH_RISK} <= {name for _, name in mixed}


def test_diversity_picks_are_distinct_and_spread():
    points, cluster = blobs()
    rng = np.random.default_rng(0)
    picks = adaptive.k_center(points, np.arange(len(points)), [], 4, rng)
    assert len(set(picks.tolist())) == 4
    assert sorted(cluster[picks].tolist()) == [0, 1, 2, 3]
    # the labeled items (reference) cover clusters 0 and 1: the picks go to the other two
    reference = np.flatnonzero(cluster <= 1)[::10]
    candidates = np.setdiff1d(np.arange(len(points)), reference)
    for pick in (adaptive.k_center, lambda *a: adaptive.uncovered(*a, seed=0)):
        chosen = pick(points, candidates, reference, 2, np.random.default_rng(0))
        assert len(set(chosen.tolist())) == 2
        assert sorted(cluster[chosen].tolist()) == [2, 3]
        assert not np.isin(chosen, reference).any()


def test_picks_are_reproducible_with_a_seed():
    points, _ = blobs(seed=3)
    p = np.random.default_rng(5).uniform(0, 1, len(points))

    def run(seed):
        learner = ActiveLearner(points, np.arange(len(points)), settings(), seed=seed)
        first = learner.pick(None, np.arange(len(points)), 10)
        rest = np.setdiff1d(np.arange(len(points)), [index for index, _ in first])
        return first + learner.pick(p, rest, 10)

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_strategy_names_are_recorded_and_rewarded():
    points, _ = blobs(seed=4)
    n = len(points)
    learner = ActiveLearner(points, np.arange(n), settings(), seed=2)
    p = np.linspace(0.001, 0.95, n)
    picks = learner.pick(p, np.arange(n), 10)
    policy = learner.adaptive
    assert {index: arm for index, (arm, _) in policy.memory.items()} == dict(picks)
    labeled = np.array([index for index, _ in picks])
    y = (p[labeled] > 0.5).astype(np.int8)
    y[0] = 1 - y[0]  # one surprise
    rewards = policy.observe(labeled, y)
    expected = {}
    for (index, arm), label in zip(picks, y):
        expected.setdefault(arm, []).append(abs(label - p[index]) + adaptive.HIT_BONUS * label)
    assert rewards.keys() == expected.keys()
    for arm in rewards:
        assert rewards[arm] == pytest.approx(expected[arm])
    assert policy.memory == {}
    assert policy.positives == int(y.sum())


def test_the_fixed_loops_cold_start_widens_once_the_labels_hold_no_positive():
    points, _ = blobs()
    learner = ActiveLearner(points, np.arange(len(points)), dict(DEFAULTS), seed=1)
    unlabeled = np.arange(WIDEN_AFTER, len(points))
    for known in (None, 1):  # unknown, or a positive among the labels: the cold start's shares
        assert sorted(name for _, name in learner.pick(None, unlabeled, 10, known)) == \
            [COLD_START] * 4 + [DIVERSITY] * 3 + [EXPLORATION] * 3
    fewer = np.arange(WIDEN_AFTER - 1, len(points))  # one label short of WIDEN_AFTER
    assert {name for _, name in learner.pick(None, fewer, 10, 0)} == {COLD_START, DIVERSITY, EXPLORATION}
    picks = learner.pick(None, unlabeled, 10, 0)  # WIDEN_AFTER labels, none positive
    assert sorted(name for _, name in picks) == [EXPLORATION] * 5 + [WIDER_SEARCH] * 5
    assert len({index for index, _ in picks}) == 10 and set(index for index, _ in picks) <= set(unlabeled.tolist())


def test_off_by_default_and_for_many_labels():
    points, _ = blobs()
    assert ActiveLearner(points, np.arange(len(points)), dict(DEFAULTS)).adaptive is None
    assert DEFAULTS["adaptive"] is False
    many = ActiveLearner(points, np.arange(len(points)), settings(), n_classes=3, positives=(1,))
    assert many.adaptive is None


def test_kept_shares_raise_an_arm_and_scale_the_others():
    shares = {"a": 0.1, "b": 0.6, "c": 0.3}
    kept = adaptive.keep_at_least(shares, {"a": 0.2})
    assert kept == pytest.approx({"a": 0.2, "b": 0.6 * 0.8 / 0.9, "c": 0.3 * 0.8 / 0.9})
    assert sum(kept.values()) == pytest.approx(1.0)
    # already above its kept share, or nothing kept: unchanged
    assert adaptive.keep_at_least(shares, {"b": 0.5}) == shares
    assert adaptive.keep_at_least(shares, {}) == shares
    bandit = adaptive.Bandit(arms=("a", "b"), rate=4.0, floor=0.05)
    bandit.update({"a": [0.0], "b": [1.0]})
    assert bandit.shares({"a": 0.5, "b": 0.5})["a"] < 0.2
    assert bandit.shares({"a": 0.5, "b": 0.5}, keep={"a": 0.2})["a"] == pytest.approx(0.2)


def test_a_grown_model_retires_diversity_and_keeps_the_high_risk_share():
    points = np.random.default_rng(6).normal(size=(300, 5)).astype(np.float32)  # no near-duplicates
    n = len(points)
    mix = DEFAULTS["mix"]
    learner = ActiveLearner(points, np.arange(n), settings(), seed=3)
    policy = learner.adaptive
    p = np.linspace(0.001, 0.95, n)
    # young (fewer than YOUNG_POSITIVES positives): a diversity share
    assert policy.prior()[DIVERSITY] == adaptive.YOUNG_DIVERSITY and policy.kept() == {}
    # the high-risk arm's picks all come back negative, the uncertain ones positive: the bandit turns from it ...
    policy.positives = adaptive.YOUNG_POSITIVES
    policy.bandit.update({HIGH_RISK: [0.0] * 10, UNCERTAIN: [1.5] * 10, EXPLORATION: [1.0] * 10})
    high_risk = mix[HIGH_RISK] / sum(mix.values())
    assert policy.bandit.shares(policy.prior())[HIGH_RISK] < high_risk
    # ... but keeps the mix's share of it, and no diversity picks once grown
    picks = policy.pick(p, np.arange(n), 20)
    names = [name for _, name in picks]
    assert DIVERSITY not in names
    assert names.count(HIGH_RISK) >= int(round(high_risk * 20))
    assert policy.history[-1][1][HIGH_RISK] == pytest.approx(high_risk)


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_worker_rebuilds_the_bandit_from_the_label_log(client, dataset, analyst, admin, tmp_path):
    dataset.settings = {**dataset.settings, "cv_repeats": 1, "adaptive": True}
    dataset.save()
    label_truth(dataset, analyst, frauds=10, genuine=100)
    first = ModelVersion.get_by_id(retrain(dataset, str(tmp_path))["model_version"])
    assert first.serving and first.metrics["adaptive"]["pulls"] == {arm: 0 for arm in ADAPTIVE_ARMS}
    assert sum(first.metrics["adaptive"]["shares"].values()) == pytest.approx(1.0)
    login(client, "root")
    page = client.get("/admin/datasets/cc/models").get_data(as_text=True)
    shares = first.metrics["adaptive"]["shares"]
    assert "Adaptive loop: its queue took " + ", ".join(
        f"{arm} {100 * share:.0f}% (0 labeled picks before)" for arm, share in shares.items()) + "." in page

    truth = truth_of(dataset)
    lease = leases.next_item(dataset, analyst)
    for _ in range(40):
        value = truth[lease.item_id]
        outcome, lease = decisions.decide(dataset, analyst, lease.item_id, f"label:{value}",
                                          reason="card testing" if value == dataset.positive_label else None)
        assert outcome.kind == "recorded", outcome.message
    decisions.undo(dataset, analyst)  # the last answer is retracted: its pick is no longer counted
    answers = list(Label.select().where((Label.model_version == first.id) & (Label.source == "human")
                                        & (Label.kind == "label")).order_by(Label.id))[:-1]
    assert len(answers) == 39 and {label.strategy for label in answers} <= set(ADAPTIVE_ARMS)

    ids, X = load_pool(dataset)
    learner = learner_for(dataset, ids, X, engine_settings(dataset))
    assert replay_picks(dataset, learner, positives=10 + sum(label.value == "fraud" for label in answers)) == 39
    bandit = learner.adaptive.bandit
    for arm in ADAPTIVE_ARMS:  # one queue's picks: each arm's value is the mean of its picks' rewards
        mine = [label for label in answers if label.strategy == arm]
        assert bandit.pulls[arm] == len(mine)
        rewards = [abs((label.value == "fraud") - (label.suggested_probability if label.suggested == "fraud"
                                                   else 1 - label.suggested_probability))
                   + adaptive.HIT_BONUS * (label.value == "fraud") for label in mine]
        assert bandit.value[arm] == (pytest.approx(np.mean(rewards)) if mine else None)
