"""The raw-transaction features of models/features.py on their own: each against a brute-force loop over a
seeded random set of transactions, and the rule that a transaction sees nothing at or after its own time."""
import numpy as np
import pytest

from models import features

DAY = features.DAY


@pytest.fixture(scope="module")
def transactions():
    rng = np.random.default_rng(7)
    n = 600
    seconds = 1_500_000_000 + np.sort(rng.integers(0, 40 * DAY, n)).astype(np.float64)
    seconds[10] = seconds[11]  # two transactions at the same second
    card = rng.integers(0, 12, n)
    card[11] = card[10]
    merchant = np.array([f"M{m}" for m in rng.integers(0, 30, n)])
    amount = np.round(rng.gamma(2.0, 30.0, n), 2)
    shuffled = rng.permutation(n)  # the functions take any order
    return seconds[shuffled], card[shuffled], merchant[shuffled], amount[shuffled]


def brute_force(seconds, card, merchant, amount):
    rows = []
    for i in range(len(seconds)):
        earlier = (card == card[i]) & (seconds < seconds[i])
        row = []
        for _, width in features.WINDOWS:
            row.append(np.sum(earlier & (seconds >= seconds[i] - width)))
        for _, width in features.WINDOWS:
            inside = earlier & (seconds >= seconds[i] - width)
            row.append(amount[inside].mean() if inside.any() else 0.0)
        month = earlier & (seconds >= seconds[i] - 30 * DAY)
        row.append(np.log1p(amount[i]) - np.log1p(amount[month].mean()) if month.any() else 0.0)
        gap = seconds[i] - seconds[earlier].max() if earlier.any() else features.NO_HISTORY_SECONDS
        row.append(np.log1p(min(gap, features.NO_HISTORY_SECONDS)))
        at_merchant = (merchant == merchant[i]) & (seconds < seconds[i])
        for _, width in features.WINDOWS:
            row.append(np.sum(at_merchant & (seconds >= seconds[i] - width)))
        row.append(float(not np.any(earlier & (merchant == merchant[i]))))
        rows.append(row)
    return np.array(rows, dtype=np.float32)


def test_entity_features_match_a_brute_force_loop(transactions):
    seconds, card, merchant, amount = transactions
    matrix, names = features.entity_features(seconds, [("card_id", card), ("merchant_id", merchant)], amount)
    assert matrix.shape == (len(seconds), len(names)) == (len(seconds), 12)
    assert names[0] == "card_id: transactions in 1d" and names[-1] == "first merchant_id for this card_id"
    np.testing.assert_allclose(matrix, brute_force(seconds, card, merchant, amount), rtol=1e-5, atol=1e-4)


def test_a_transaction_sees_nothing_at_or_after_its_own_time(transactions):
    """Dropping every later transaction (and those at the same second) changes no earlier row's features."""
    seconds, card, merchant, amount = transactions
    full, _ = features.entity_features(seconds, [("card", card), ("merchant", merchant)], amount)
    cut = np.median(seconds)
    keep = seconds < cut
    part, _ = features.entity_features(seconds[keep], [("card", card[keep]), ("merchant", merchant[keep])],
                                       amount[keep])
    np.testing.assert_array_equal(full[keep], part)


def test_time_features():
    monday_23h = 1_700_438_400 + 23 * 3600  # 2023-11-20 was a Monday
    matrix, names = features.time_features([monday_23h, monday_23h + 9 * 3600 + 1800])
    assert names == ["hour of day", "day of week", "night (22-6 h)"]
    np.testing.assert_allclose(matrix, [[23.0, 0.0, 1.0], [8.5, 1.0, 0.0]])


def test_one_hot_keeps_its_vocabulary_and_sends_unseen_values_to_other():
    vocabulary = features.category_vocabulary(["pos", "web", "pos", None, "pos", "web", "atm"], limit=2)
    assert vocabulary == ["pos", "web"]
    matrix, names = features.one_hot(["web", "atm", None, "pos", "moto"], vocabulary, "channel")
    assert names == ["channel = pos", "channel = web", "channel = (other)"]
    np.testing.assert_array_equal(matrix, [[0, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0], [0, 0, 1]])


def test_label_rates_leave_each_labeled_row_out():
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    labeled = np.array([0, 1, 3, 5])
    y = np.array([1, 0, 1, 0])
    rates = features.label_rates(groups, labeled, y)
    prior, k = 0.5, features.LABEL_SMOOTHING
    expected_share = [(0 + k * prior) / (1 + k), (1 + k * prior) / (1 + k), (1 + k * prior) / (2 + k),
                      (0 + k * prior) / (0 + k), (1 + k * prior) / (1 + k), (0 + k * prior) / (0 + k),
                      (0 + k * prior) / (1 + k), (0 + k * prior) / (1 + k)]
    np.testing.assert_allclose(rates[:, 0], expected_share, rtol=1e-6)
    np.testing.assert_allclose(rates[:, 1], np.log1p([1, 1, 2, 0, 1, 0, 1, 1]), rtol=1e-6)
    outside = features.label_rates(groups, labeled, y, rows=np.array([0, 2, 7]))  # rows from outside the pool
    np.testing.assert_allclose(outside[:, 0], [(1 + k * prior) / (2 + k), (0 + k * prior) / (1 + k),
                                               (0 + k * prior) / (0 + k)], rtol=1e-6)


@pytest.mark.slow  # seconds of work: the full tier runs it
def test_the_learner_finds_positives_that_only_their_group_gives_away():
    """Compromised merchants: every transaction at merchants 0-4 is fraud, and nothing else tells them apart."""
    from sklearn.metrics import average_precision_score

    from labeler.store.settings import DEFAULTS
    from models.learner import ActiveLearner
    rng = np.random.default_rng(3)
    n = 3000
    groups = rng.integers(0, 60, n)
    y = (groups < 5).astype(np.int8)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    labeled = rng.choice(n, 400, replace=False)
    unlabeled = np.setdiff1d(np.arange(n), labeled)
    settings = {**DEFAULTS, "pseudo_labels": False}
    ap = {}
    for name, grouping in (("with groups", (groups, None)), ("without", None)):
        learner = ActiveLearner(X, np.arange(n), settings, seed=0, groups=grouping)
        model = learner.train(labeled, y[labeled]).model
        ap[name] = average_precision_score(y[unlabeled], learner.score(model)[unlabeled])
    assert ap["with groups"] > 0.9 > 0.3 > ap["without"], ap


def test_windowed_label_rates_count_only_the_groups_labels_of_the_weeks_before():
    rng = np.random.default_rng(5)
    n = 400
    groups = rng.integers(0, 8, n)
    seconds = rng.uniform(0, 90 * DAY, n).round()
    labeled = rng.choice(n, 150, replace=False)
    y = rng.integers(0, 2, 150)
    rates = features.label_rates(groups, labeled, y, seconds=seconds)
    prior, k = y.mean(), features.LABEL_SMOOTHING
    for row in range(n):
        window = (groups[labeled] == groups[row]) & (seconds[labeled] < seconds[row]) \
            & (seconds[labeled] >= seconds[row] - features.LABEL_WINDOW)
        count, positives = window.sum(), y[window].sum()
        np.testing.assert_allclose(rates[row], [(positives + k * prior) / (count + k), np.log1p(count)], rtol=1e-5)
    outside = features.label_rates(groups, labeled, y, groups[:20], seconds=seconds, rows_seconds=seconds[:20])
    np.testing.assert_allclose(outside, rates[:20], rtol=1e-6)  # strictly earlier: a row's own label never counts


def test_a_merchant_compromised_lately_is_known_by_its_recent_frauds():
    """Merchant 0 turns fraudulent on day 60 after 60 genuine days: its all-time share stays low, its share of
    the four weeks before is high."""
    seconds = np.arange(100) * DAY
    groups = np.zeros(100, dtype=np.int64)
    y_all = (seconds >= 60 * DAY).astype(int)
    labeled = np.arange(0, 95)
    windowed = features.label_rates(groups, labeled, y_all[labeled], rows=np.array([0]), seconds=seconds,
                                    rows_seconds=np.array([97 * DAY]))
    overall = features.label_rates(groups, labeled, y_all[labeled], rows=np.array([0]))
    assert windowed[0, 0] > 0.8 > 0.5 > overall[0, 0]


def test_one_hot_blocks_are_found_by_name_and_a_split_block_is_refused():
    vocabularies = {"channel": ["pos", "web"], "country": ["BE"]}
    names = ["amount", "channel = pos", "channel = web", "channel = (other)", "country = BE", "country = (other)",
             "hour of day"]
    assert features.one_hot_blocks(names, vocabularies) == [(1, 4), (4, 6)]
    with pytest.raises(ValueError, match="'country'"):
        features.one_hot_blocks(names[:5] + ["hour of day", "country = (other)"], vocabularies)
    with pytest.raises(ValueError, match="'channel'"):
        features.one_hot_blocks(["amount"], {"channel": ["pos"]})


def test_category_codes_compare_as_text_and_send_missing_and_unseen_values_to_other():
    codes = features.category_codes([1.0, 2.0, None, float("nan"), "1.0"], ["1.0", "2.0"])
    np.testing.assert_array_equal(codes, [0, 1, 2, 2, 0])
