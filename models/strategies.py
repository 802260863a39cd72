"""Query strategies: which pool items an analyst should label next. Numpy in and out, vectorized over the pool.

Uncertainty scores take a probability matrix (n items, k labels) and return one score per item, higher meaning
more worth asking. ``plan_batch`` mixes high-risk (exploitation), uncertain (frontier) and random exploration
picks, and ``cold_start`` ranks by an unsupervised anomaly score spread over k-means clusters before any model
exists. Every pick carries the name of the strategy that made it.
"""
import numpy as np
from sklearn.cluster import KMeans

HIGH_RISK = "high risk"
UNCERTAIN = "uncertain"
EXPLORATION = "exploration"
COLD_START = "cold start"
MIX_STRATEGIES = (HIGH_RISK, UNCERTAIN, EXPLORATION)

ANOMALY_CLIP = 5.0  # robust z-scores are clipped so that one extreme feature cannot dominate the score
DUPLICATE_RADIUS = 0.05  # rms distance in robust z units below which two items count as near-duplicates
COLD_START_POOL = 20  # cold start clusters the top ``COLD_START_POOL * size`` anomalies


def least_confidence(probabilities):
    """1 - the highest probability of each row."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return 1.0 - probabilities.max(axis=1)


def margin(probabilities):
    """1 - (highest - second highest probability) of each row: 1 where the two best labels tie."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[1] < 2:
        return np.zeros(len(probabilities))
    top_two = np.partition(probabilities, -2, axis=1)[:, -2:]
    return 1.0 - (top_two[:, 1] - top_two[:, 0])


def entropy(probabilities):
    """Shannon entropy (nats) of each row."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    return -(probabilities * np.log(probabilities)).sum(axis=1)


UNCERTAINTY = {"least_confidence": least_confidence, "margin": margin, "entropy": entropy}


def binary_matrix(p_positive):
    """The (n, 2) matrix [P(not positive), P(positive)] of a vector of positive-class probabilities."""
    p_positive = np.asarray(p_positive, dtype=np.float64)
    return np.column_stack([1.0 - p_positive, p_positive])


class RobustScale:
    """Median / interquartile-range scaling fitted on a pool; ``transform`` gives float32 robust z-scores."""

    def __init__(self, features):
        features = np.asarray(features, dtype=np.float32)
        self.centre = np.median(features, axis=0)
        low, high = np.percentile(features, [25, 75], axis=0)
        spread = (high - low).astype(np.float32)
        spread[spread == 0] = 1.0
        self.spread = spread

    def transform(self, features):
        return ((np.asarray(features, dtype=np.float32) - self.centre) / self.spread).astype(np.float32)


def anomaly_scores(features, scale=None):
    """Root mean square of the clipped robust z-scores of each row: larger is more unusual.

    ``scale`` is a fitted RobustScale (default: fitted on ``features``).
    """
    z = (scale or RobustScale(features)).transform(features)
    np.clip(z, -ANOMALY_CLIP, ANOMALY_CLIP, out=z)
    return np.sqrt(np.mean(z * z, axis=1, dtype=np.float64))


def top_indices(scores, candidates, count):
    """The ``count`` entries of ``candidates`` (pool indices) with the highest ``scores``, best first."""
    candidates = np.asarray(candidates, dtype=np.int64)
    count = min(count, len(candidates))
    if count <= 0:
        return candidates[:0]
    values = scores[candidates]
    if count < len(candidates):
        part = np.argpartition(-values, count - 1)[:count]
    else:
        part = np.arange(len(candidates))
    order = part[np.argsort(-values[part], kind="stable")]
    return candidates[order]


def diverse(ranked, z, count, radius=DUPLICATE_RADIUS, taken=()):
    """Walk ``ranked`` (pool indices, best first) and keep up to ``count`` items, skipping any item within
    ``radius`` (rms distance of the rows of ``z``) of one already kept or of an index in ``taken``."""
    kept = []
    reference = [z[index] for index in taken]
    for index in ranked:
        if len(kept) == count:
            break
        if reference:
            distances = np.sqrt(np.mean((np.asarray(reference) - z[index]) ** 2, axis=1))
            if distances.min() < radius:
                continue
        kept.append(int(index))
        reference.append(z[index])
    return np.asarray(kept, dtype=np.int64)


def _ranked_window(scores, candidates, count):
    """Enough of the best candidates to fill ``count`` picks after near-duplicates are dropped."""
    return top_indices(scores, candidates, max(4 * count, count + 50))


def cold_start(z, anomaly, candidates, size, seed=None):
    """Up to ``size`` candidates for a pool without a model: the most anomalous item of each of ``size``
    k-means clusters of the top anomalies, most anomalous first, near-duplicates skipped.

    ``z`` is the pool's robust z-scores, ``anomaly`` its anomaly scores, ``candidates`` pool indices.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    size = min(size, len(candidates))
    if size <= 0:
        return candidates[:0]
    top = top_indices(anomaly, candidates, COLD_START_POOL * size)
    if len(top) <= size:
        return diverse(top, z, size)
    points = np.clip(z[top], -ANOMALY_CLIP, ANOMALY_CLIP)
    clusters = KMeans(n_clusters=size, n_init=1, random_state=seed, max_iter=100).fit_predict(points)
    # top is sorted by anomaly, so the first member of each cluster is its most anomalous item
    _, first = np.unique(clusters, return_index=True)
    leaders = top[np.sort(first)]
    picks = diverse(leaders, z, size)
    if len(picks) < size:
        rest = top[~np.isin(top, picks)]
        picks = np.concatenate([picks, diverse(rest, z, size - len(picks), taken=picks)])
    return picks


def mix_counts(size, mix):
    """How many of ``size`` picks each strategy of ``mix`` ({strategy: share}) gets: largest remainders."""
    names = [name for name in MIX_STRATEGIES if mix.get(name, 0) > 0]
    if not names:
        raise ValueError("the mix gives no strategy a positive share")
    shares = np.array([float(mix[name]) for name in names])
    exact = size * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    for position in np.argsort(-(exact - counts), kind="stable")[: size - counts.sum()]:
        counts[position] += 1
    return dict(zip(names, counts.tolist()))


def plan_batch(p_positive, z, candidates, size, mix, rng, uncertainty="least_confidence"):
    """Pick ``size`` of ``candidates`` (pool indices) by the ``mix`` of strategies; returns [(index, strategy)]
    in the order to show them, strategies interleaved so that any prefix follows the mix.

    High risk: highest ``p_positive``; uncertain: highest ``uncertainty`` score of the binary probabilities;
    exploration: uniformly random. No item is picked twice and near-duplicates (rows of ``z``) are skipped.
    ``rng`` is a numpy Generator. Raises KeyError for an unknown uncertainty name, ValueError for an empty mix.
    """
    score_uncertainty = UNCERTAINTY[uncertainty]
    candidates = np.asarray(candidates, dtype=np.int64)
    size = min(size, len(candidates))
    counts = mix_counts(size, mix)
    available = np.ones(len(p_positive), dtype=bool)
    picked = {}
    taken = np.zeros(0, dtype=np.int64)

    def remaining():
        return candidates[available[candidates]]

    for name in (HIGH_RISK, UNCERTAIN):
        if counts.get(name):
            if name == HIGH_RISK:
                scores = np.asarray(p_positive, dtype=np.float64)
            else:
                scores = np.zeros(len(p_positive))
                scores[candidates] = score_uncertainty(binary_matrix(p_positive[candidates]))
            window = _ranked_window(scores, remaining(), counts[name])
            chosen = diverse(window, z, counts[name], taken=taken)
            picked[name] = chosen
            available[chosen] = False
            taken = np.concatenate([taken, chosen])
    if counts.get(EXPLORATION):
        pool = remaining()
        draw = rng.choice(pool, size=min(len(pool), 4 * counts[EXPLORATION] + 10), replace=False)
        chosen = diverse(draw, z, counts[EXPLORATION], taken=taken)
        picked[EXPLORATION] = chosen
        available[chosen] = False
    short = size - sum(len(chosen) for chosen in picked.values())
    if short > 0:  # near-duplicates left a strategy short: fill with the next uncertain items
        scores = np.zeros(len(p_positive))
        scores[candidates] = score_uncertainty(binary_matrix(p_positive[candidates]))
        extra = top_indices(scores, remaining(), short)
        picked[UNCERTAIN] = np.concatenate([picked.get(UNCERTAIN, extra[:0]), extra])
    return interleave(picked)


def interleave(picked):
    """[(index, strategy)] from {strategy: indices}, spread so that each strategy's picks are evenly placed."""
    slots = []
    for name, indices in picked.items():
        n = len(indices)
        for rank, index in enumerate(indices):
            slots.append(((rank + 0.5) / n, MIX_STRATEGIES.index(name) if name in MIX_STRATEGIES else 9,
                          int(index), name))
    slots.sort()
    return [(index, name) for _, _, index, name in slots]


def uncertainty_batch(p_positive, candidates, size, uncertainty="least_confidence"):
    """The ``size`` candidates with the highest uncertainty score, most uncertain first (plain baseline)."""
    candidates = np.asarray(candidates, dtype=np.int64)
    scores = np.zeros(len(p_positive))
    scores[candidates] = UNCERTAINTY[uncertainty](binary_matrix(np.asarray(p_positive)[candidates]))
    return top_indices(scores, candidates, size)
