"""Query strategies: which pool items an analyst should label next. Numpy in and out, vectorized over the pool.

Uncertainty scores take each item's probabilities (binary datasets: P(positive), one per item; K classes: an
(n, K) array) and return one score per item, higher meaning more worth asking. ``plan_batch`` mixes high-risk
(exploitation: the highest probability of any positive label), uncertain (frontier), committee (the disagreement
of models.committee) and random exploration picks, and ``cold_start`` ranks by an unsupervised anomaly score
spread over k-means clusters before any model exists. Every pick carries the name of the strategy that made it.
"""
import numpy as np
from sklearn.cluster import KMeans

from models.names import COMMITTEE, EXPLORATION, HIGH_RISK, MIX_STRATEGIES, UNCERTAIN, UNCERTAINTY_MEASURES

ANOMALY_CLIP = 5.0  # robust z-scores are clipped so that one extreme feature cannot dominate the score
DUPLICATE_RADIUS = 0.05  # rms distance in robust z units below which two items count as near-duplicates
COLD_START_POOL = 20  # cold start clusters the top ``COLD_START_POOL * size`` anomalies
COLD_START_CLUSTERS = 1000  # ... into at most this many k-means clusters (k-means' cost grows with k times the points)
REPRESENTATIVE_SAMPLE = 20_000  # representatives are drawn from k-means of at most this many items


def least_confidence(p):
    """1 - the highest label probability of each item (``p``: P(positive) per item, or (n, K) probabilities)."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2:
        return 1.0 - p.max(axis=1)
    return 0.5 - np.abs(p - 0.5)


def margin(p):
    """1 - the gap between each item's two most likely labels' probabilities: 1 where they tie."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2:
        top = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
        return 1.0 - (top[:, 1] - top[:, 0])
    return 1.0 - 2.0 * np.abs(p - 0.5)


def entropy(p):
    """Shannon entropy (nats) of each item's label probabilities."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 1:
        p = np.column_stack([p, 1.0 - p])
    clipped = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(clipped)).sum(axis=1)


def risk(p, positives=None):
    """Each item's probability of being positive: P(positive) itself for a binary model; for (n, K)
    probabilities the highest among the ``positives`` (class indices: every fraud type), None when there is
    no positive class (then nothing is picked for risk)."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 1:
        return p
    positives = list(positives or ())
    return p[:, positives].max(axis=1) if positives else None


UNCERTAINTY = dict(zip(UNCERTAINTY_MEASURES, (least_confidence, margin, entropy)))


SCORE_ROWS = 262_144  # rows of robust z-scores anomaly_scores holds at a time


class RobustScale:
    """Median / interquartile-range scaling fitted on a pool; ``transform`` gives float32 robust z-scores.

    A pool of more than ``fit_rows`` rows is fitted on a seeded draw of that many (the quartiles of 500,000 rows
    stand for the pool's; at 10 million rows the full medians and percentiles took 23 s: bench/scale.py)."""

    FIT_ROWS = 500_000

    def __init__(self, features, fit_rows=FIT_ROWS):
        features = np.asarray(features, dtype=np.float32)
        if len(features) > fit_rows:
            drawn = np.random.default_rng(0).choice(len(features), fit_rows, replace=False)
            features = features[np.sort(drawn)]
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
    scale = scale or RobustScale(features)
    scores = np.empty(len(features), dtype=np.float64)
    for start in range(0, len(features), SCORE_ROWS):  # a block at a time: no second copy of a large pool
        z = scale.transform(features[start:start + SCORE_ROWS])
        np.clip(z, -ANOMALY_CLIP, ANOMALY_CLIP, out=z)
        scores[start:start + SCORE_ROWS] = np.sqrt(np.mean(z * z, axis=1, dtype=np.float64))
    return scores


def rank_union(*scores):
    """One anomaly score from several (each over the same rows, NaN where a score says nothing): a row's highest
    rank share (0 to 1) among them, so that the top of the combined score takes the tops of each in turn.
    Different scores find different frauds (on the simulated transactions the robust distance the inflated
    amounts, the sequence error card testing: bench/sequence_loop.py)."""
    combined = None
    for score in scores:
        score = np.asarray(score, dtype=np.float64)
        ranked = np.isfinite(score)
        share = np.zeros(len(score))
        if ranked.any():
            share[ranked] = (np.argsort(np.argsort(score[ranked], kind="stable"), kind="stable") + 1) / ranked.sum()
        combined = share if combined is None else np.maximum(combined, share)
    return combined


def top_indices(scores, candidates, count):
    """The ``count`` entries of ``candidates`` (pool indices) with the highest ``scores``, best first."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return _best(np.asarray(scores)[candidates], candidates, count)


def _best(values, candidates, count, leave_out=()):
    """The ``count`` entries of ``candidates`` with the highest ``values`` (one per candidate), best first,
    leaving out the pool indices in ``leave_out``."""
    wanted = min(count + len(leave_out), len(candidates))
    if count <= 0 or wanted <= 0:
        return candidates[:0]
    part = np.argpartition(-values, wanted - 1)[:wanted] if wanted < len(values) else np.arange(len(values))
    best = candidates[part[np.argsort(-values[part], kind="stable")]]
    if len(leave_out):
        best = best[~np.isin(best, leave_out)]
    return best[:count]


def diverse(ranked, z, count, radius=DUPLICATE_RADIUS, taken=()):
    """Walk ``ranked`` (pool indices, best first) and keep up to ``count`` items, skipping any item within
    ``radius`` (rms distance of the rows of ``z``) of one already kept or of an index in ``taken``."""
    kept = []
    taken = np.asarray(taken, dtype=np.int64)
    reference = np.empty((len(taken) + min(count, len(ranked)), z.shape[1]), dtype=np.float64)
    reference[:len(taken)] = z[taken]
    filled = len(taken)
    for index in ranked:
        if len(kept) == count:
            break
        if filled and np.sqrt(np.mean((reference[:filled] - z[index]) ** 2, axis=1)).min() < radius:
            continue
        kept.append(int(index))
        reference[filled] = z[index]
        filled += 1
    return np.asarray(kept, dtype=np.int64)


def _ranked_window(values, candidates, count, leave_out):
    """Enough of the best candidates (by ``values``, one per candidate) to fill ``count`` picks after
    near-duplicates are dropped, leaving out the pool indices in ``leave_out``."""
    return _best(values, candidates, max(4 * count, count + 50), leave_out)


def cold_start(z, anomaly, candidates, size, seed=None):
    """Up to ``size`` candidates for a pool without a model: the most anomalous item of each of ``size`` (at
    most COLD_START_CLUSTERS) k-means clusters of the top anomalies, most anomalous first, near-duplicates
    skipped; a larger ``size`` is filled with the next most anomalous items, near-duplicates skipped.

    ``z`` is the pool's robust z-scores, ``anomaly`` its anomaly scores, ``candidates`` pool indices.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    size = min(size, len(candidates))
    if size <= 0:
        return candidates[:0]
    clusters_wanted = min(size, COLD_START_CLUSTERS)
    top = top_indices(anomaly, candidates, COLD_START_POOL * clusters_wanted + (size - clusters_wanted))
    if len(top) <= size:
        return diverse(top, z, size)
    points = np.clip(z[top], -ANOMALY_CLIP, ANOMALY_CLIP)
    clusters = KMeans(n_clusters=clusters_wanted, n_init=1, random_state=seed, max_iter=100).fit_predict(points)
    # top is sorted by anomaly, so the first member of each cluster is its most anomalous item
    _, first = np.unique(clusters, return_index=True)
    leaders = top[np.sort(first)]
    picks = diverse(leaders, z, size)
    if len(picks) < size:
        rest = top[~np.isin(top, picks)]
        picks = np.concatenate([picks, diverse(rest, z, size - len(picks), taken=picks)])
    return picks


def representatives(z, candidates, size, seed=None, sample=REPRESENTATIVE_SAMPLE):
    """Up to ``size`` candidates that stand for the pool: the member nearest to each centre of ``size``
    k-means clusters (of a seeded sample of at most ``sample`` candidates), larger clusters first. The cold
    start of a label set without a positive class (the digits): there is no rare class to hunt, and the classes
    are best found by covering the pool."""
    candidates = np.asarray(candidates, dtype=np.int64)
    size = min(size, len(candidates))
    if size <= 0:
        return candidates[:0]
    rng = np.random.default_rng(seed)
    drawn = candidates if len(candidates) <= sample else np.sort(rng.choice(candidates, sample, replace=False))
    points = np.clip(z[drawn], -ANOMALY_CLIP, ANOMALY_CLIP)
    kmeans = KMeans(n_clusters=size, n_init=1, random_state=seed, max_iter=100).fit(points)
    distances = np.linalg.norm(points - kmeans.cluster_centers_[kmeans.labels_], axis=1)
    order = np.lexsort((distances, kmeans.labels_))
    clusters, first = np.unique(kmeans.labels_[order], return_index=True)
    nearest = drawn[order[first]]
    sizes = np.bincount(kmeans.labels_, minlength=size)[clusters]
    return nearest[np.argsort(-sizes, kind="stable")]


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


def plan_batch(p, z, candidates, size, mix, rng, uncertainty="least_confidence", positives=None, disagreement=None):
    """Pick ``size`` of ``candidates`` (pool indices) by the ``mix`` of strategies; returns [(index, strategy)]
    in the order to show them, strategies interleaved so that any prefix follows the mix.

    ``p``: P(positive) per pool item, or (n, K) class probabilities with ``positives`` the positive classes'
    indices. High risk: highest ``risk``; with K classes and no positive class its share goes to the uncertain
    picks. Uncertain: highest ``uncertainty`` score; committee: highest ``disagreement`` (per pool item,
    models.committee; without it the committee's share goes to the uncertain picks); exploration: uniformly
    random. No item is picked twice and near-duplicates (rows of ``z``) are skipped. ``rng`` is a numpy
    Generator. Raises KeyError for an unknown uncertainty name, ValueError for an empty mix.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    size = min(size, len(candidates))
    p_candidates = np.asarray(p, dtype=np.float64)[candidates]
    risk_candidates = risk(p_candidates, positives)
    if risk_candidates is None:
        mix = {**mix, UNCERTAIN: mix.get(UNCERTAIN, 0) + mix.get(HIGH_RISK, 0), HIGH_RISK: 0}
    if disagreement is None:
        mix = {**mix, UNCERTAIN: mix.get(UNCERTAIN, 0) + mix.get(COMMITTEE, 0), COMMITTEE: 0}
    counts = mix_counts(size, mix)
    ranking = {HIGH_RISK: risk_candidates, UNCERTAIN: UNCERTAINTY[uncertainty](p_candidates),
               COMMITTEE: None if disagreement is None else np.asarray(disagreement, dtype=np.float64)[candidates]}
    picked = {}
    taken = np.zeros(0, dtype=np.int64)
    for name in (HIGH_RISK, UNCERTAIN, COMMITTEE):
        if counts.get(name):
            window = _ranked_window(ranking[name], candidates, counts[name], taken)
            picked[name] = diverse(window, z, counts[name], taken=taken)
            taken = np.concatenate([taken, picked[name]])
    if counts.get(EXPLORATION):
        draw = rng.choice(candidates, size=min(len(candidates), 4 * counts[EXPLORATION] + 10 + len(taken)),
                          replace=False)
        picked[EXPLORATION] = diverse(draw[~np.isin(draw, taken)], z, counts[EXPLORATION], taken=taken)
        taken = np.concatenate([taken, picked[EXPLORATION]])
    short = size - len(taken)
    if short > 0:  # near-duplicates left a strategy short: fill with the next uncertain items
        extra = _best(ranking[UNCERTAIN], candidates, short, taken)
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


def uncertainty_batch(p, candidates, size, uncertainty="least_confidence"):
    """The ``size`` candidates with the highest uncertainty score, most uncertain first (plain baseline);
    ``p`` as for plan_batch."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return _best(UNCERTAINTY[uncertainty](np.asarray(p)[candidates]), candidates, size)
