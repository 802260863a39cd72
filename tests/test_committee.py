"""Query by committee (models.committee) and its share of the queue (models.strategies.plan_batch, the learner)."""
import numpy as np
import pytest

from labeler.store.settings import DEFAULTS
from models import committee, names, strategies
from models.learner import ActiveLearner
from models.names import COMMITTEE, EXPLORATION, HIGH_RISK, UNCERTAIN


def _noisy_table(seed=0, n=400, noise=0.3):
    """Rows of two features: the label follows the first (with ``noise``: 0.3 a clear signal, 2.5 a weak one),
    the second is noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)).astype(np.float32)
    y = (X[:, 0] + noise * rng.normal(size=n) > 1.0 + noise).astype(np.int8)
    return X, y


def test_the_committee_disagrees_where_the_labels_leave_the_model_open():
    X, y = _noisy_table()
    labeled = np.arange(300)
    pool = np.vstack([X, [[1.0, 0.0], [1.0, 9.0], [1.0, -9.0], [-2.0, 0.0], [-2.0, 9.0]]]).astype(np.float32)
    scores = committee.disagreement(pool, labeled, y[labeled], seed=3)
    assert scores.shape == (len(pool),) and (scores >= 0).all()
    near_frontier, far_on_noise_up, far_on_noise_down, clear_genuine, clear_far = scores[-5:]
    # the members' slopes on the noise feature differ: far along it at the frontier they part most
    assert far_on_noise_up > near_frontier and far_on_noise_down > near_frontier
    # deep inside the genuine side every member agrees, however far along the noise
    assert clear_genuine < near_frontier / 10 and clear_far < far_on_noise_up
    # the same seed draws the same committee
    assert np.array_equal(scores, committee.disagreement(pool, labeled, y[labeled], seed=3))
    with pytest.raises(ValueError, match="both classes"):
        committee.disagreement(pool, labeled, np.zeros(len(labeled), dtype=np.int8))


def test_the_committee_share_picks_the_largest_disagreements_and_falls_to_uncertain_without_them():
    rng = np.random.default_rng(0)
    n = 1000
    z = rng.normal(size=(n, 3))
    p = rng.uniform(0.0, 0.2, n)
    disagreement = np.zeros(n)
    disagreement[900:920] = np.linspace(1.0, 2.0, 20)  # the committee's 20 favourites ...
    p[900:920] = 0.0  # ... which neither the high-risk nor the uncertain picks would take
    mix = {HIGH_RISK: 0.2, UNCERTAIN: 0.5, COMMITTEE: 0.2, EXPLORATION: 0.1}
    picks = strategies.plan_batch(p, z, np.arange(n), 50, mix, rng, disagreement=disagreement)
    by_name = {}
    for index, name in picks:
        by_name.setdefault(name, []).append(index)
    assert {name: len(indices) for name, indices in by_name.items()} == {HIGH_RISK: 10, UNCERTAIN: 25,
                                                                          COMMITTEE: 10, EXPLORATION: 5}
    assert set(by_name[COMMITTEE]) == set(range(910, 920))  # the ten largest disagreements
    # without the committee's scores (K classes, no stored file) its share is uncertain picks
    picks = strategies.plan_batch(p, z, np.arange(n), 50, mix, np.random.default_rng(0))
    assert [name for _, name in picks].count(UNCERTAIN) == 35 and COMMITTEE not in {name for _, name in picks}


WITH_COMMITTEE = {HIGH_RISK: 0.2, UNCERTAIN: 0.35, COMMITTEE: 0.35, EXPLORATION: 0.1}


def _trained(noise, mix=WITH_COMMITTEE):
    """(learner, labeled, y, P(positive) of the pool) after one training on 100 labels (15 positives) of a
    _noisy_table of 600 rows, with the queue ``mix``."""
    X, y = _noisy_table(1, 600, noise)
    settings = {**DEFAULTS, "cv_folds": 3, "cv_repeats": 1, "mix": mix}
    learner = ActiveLearner(X, np.arange(len(X)), settings, seed=0)
    labeled = np.concatenate([np.flatnonzero(y == 1)[:15], np.flatnonzero(y == 0)[:85]])
    served = learner.train(labeled, y[labeled])
    return learner, labeled, y, served.model.predict(X)


def test_the_committee_picks_while_the_model_ranks_weakly_once_per_training():
    learner, labeled, y, p = _trained(noise=2.5)
    assert learner.selected.auprc < names.COMMITTEE_WEAK_BELOW  # a weak signal: the labels leave the model open
    assert learner.disagreement is None  # computed by the first pick after the training
    unlabeled = np.setdiff1d(np.arange(len(p)), labeled)
    picks = learner.pick(p, unlabeled, 20)
    assert sum(name == COMMITTEE for _, name in picks) == 7  # its share, 0.35 of 20
    expected = committee.disagreement(learner.pool_features(), labeled, y[labeled], seed=0)
    assert np.array_equal(learner.disagreement, expected)
    learner.train(labeled[:-1], y[labeled[:-1]])
    assert learner.disagreement is None  # a new training: the next pick computes it again
    # no committee share in the mix (the default): no committee
    learner, labeled, y, p = _trained(noise=2.5, mix=DEFAULTS["mix"])
    assert DEFAULTS["mix"][COMMITTEE] == 0 and learner.committee_disagreement() is None
    assert COMMITTEE not in {name for _, name in learner.pick(p, unlabeled, 20)}


def test_a_model_that_ranks_well_keeps_the_uncertain_picks():
    learner, labeled, _, p = _trained(noise=0.3)
    assert learner.selected.auprc >= names.COMMITTEE_WEAK_BELOW and learner.committee_disagreement() is None
    picked = [name for _, name in learner.pick(p, np.setdiff1d(np.arange(len(p)), labeled), 20)]
    assert COMMITTEE not in picked and picked.count(UNCERTAIN) == 14  # uncertain 0.35 + the committee's 0.35
    assert committee.wanted(None) and committee.wanted(0.49) and not committee.wanted(0.5)
