"""The active-learning loop over one pool, numpy in and out: train and select the weak model on labels given as
pool indices, score the pool, choose pseudo-labels, pick the next batch. The worker's retrain and queue refill
(labeler.worker) and the in-memory simulation use it, so the product and the benchmarks pick batches by the
same code.
"""
import numpy as np

from models import adaptive as adaptive_policy
from models import pseudo as pseudo_labels
from models import features as transaction_features
from models import committee, generative_candidates, prequential, selection, strategies, weak
from models.names import COLD_START, COMMITTEE, DIVERSITY, EXPLORATION

# The fixed loop's binary cold start (ActiveLearner.pick), chosen on development seeds 10-89
# (bench/results/suite_early_dev.txt): anomaly-led picks alone (with the mix's 0.1 of random ones) left caravan
# behind plain uncertainty at 100 labels; with diversity and random picks beside them from the first batch caravan
# gains at 100 labels, wage_high is level or ahead, and the credit card shows more frauds.
COLD_START_SHARES = {COLD_START: 0.4, DIVERSITY: 0.3, EXPLORATION: 0.3}


def cold_start_probability(anomaly):
    """A rough P(positive) from the anomaly score's rank in the pool: only the top 0.2% reach 0.5."""
    ranks = anomaly.argsort().argsort() / max(len(anomaly) - 1, 1)
    return ranks ** 350


class ActiveLearner:
    """The loop over one pool (``X`` float32 rows, ``ids`` their integer ids): ``train`` on labels given as
    pool indices, ``score`` the pool, ``pseudo`` to pick pseudo-labels, ``pick`` the next batch.

    ``groups`` ((integer codes per row, e.g. the merchant of a transaction, and the rows' epoch seconds or None))
    add two features taken from the labels at each training (models.features.label_rates: the group's share of
    positives among the labels of its last weeks, a row never seeing its own). Not with generative candidates,
    which are fitted to the pool's own columns. ``categorical`` ((start, stop) column ranges of ``X``'s one-hot
    blocks) makes them native categorical features of the boosted model.

    ``n_classes`` > 2 makes it a K-class loop: labels are class indices, scores (n, K) probabilities, and
    ``positives`` (class indices, possibly none) are the classes that count as fraud (high risk, pseudo-labels
    first, label rates). Binary (the default) keeps P(positive) throughout. ``image_shape`` (height, width,
    channels) says the rows are images, for the generative candidates.
    """

    def __init__(self, X, ids, settings, seed=0, groups=None, categorical=(), n_classes=2, positives=(1,),
                 image_shape=None):
        self.X = np.asarray(X, dtype=np.float32)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.settings = settings
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.scale = strategies.RobustScale(self.X)
        self.z = self.scale.transform(self.X)
        self.anomaly = strategies.anomaly_scores(self.X, self.scale)
        self.features = self.features_of(self.X, self.anomaly)
        self.n_classes = int(n_classes)
        self.positives = [int(k) for k in positives] if self.n_classes > 2 else [1]
        self.image_shape = image_shape
        names = settings.get("generative_candidates") or []
        # trains nothing until model selection asks: the web process builds learners and never imports Keras
        self.generative = (generative_candidates.GenerativeCandidates(self.features, names, seed,
                                                                      **self._generative_options())
                           if names else None)
        self.selected = None
        self.selected_at = None
        self.selected_kinds = None
        self.groups = None if groups is None or self.generative is not None else groups
        self.labels_seen = None  # (labeled pool indices, labels) of the last training, for the label rates
        # the committee's disagreement over the pool (models.committee) from the last training's labels: computed
        # by the first pick after a training, or set from the file its retrain stored (the worker's refill)
        self.disagreement = None
        self.categorical = [tuple(block) for block in categorical]
        # the adaptive loop (setting ``adaptive``, binary only): the mix chosen online, models.adaptive
        self.adaptive = (adaptive_policy.AdaptivePolicy(self.z, self.anomaly, settings["mix"], self.rng, seed,
                                                        settings["uncertainty"])
                         if settings.get("adaptive") and self.n_classes == 2 else None)
        # binary: labels scored before they were given by the blend and its logistic part (models.prequential).
        # The worker loads it from the store; a learner that lives across trainings (the simulation) keeps it
        # itself from the model each training served (``served``: (pool indices labeled then, the model)).
        self.prequential = prequential.Record()
        self.served = None

    def _generative_options(self):
        """Keyword arguments of GenerativeCandidates beyond the binary tabular defaults: the classes, and the
        images' shape (the SGAN's convolutional models)."""
        options = {} if self.n_classes == 2 else {"n_classes": self.n_classes}
        return options if self.image_shape is None else {**options, "image_shape": self.image_shape}

    def labels_of(self, y):
        """``y`` as the models take it: binary int8, or int64 class indices for K classes."""
        return np.asarray(y, dtype=np.int8 if self.n_classes == 2 else np.int64)

    def train(self, labeled, y, pseudo=None):
        """Fit the serving model on pool indices ``labeled`` with labels ``y`` (binary, or class indices) and optional pseudo-labels
        ((pool indices, labels)); model selection (the weak kinds, plus the generative candidates the setting
        ``generative_candidates`` names: models.generative_candidates, trained here, so Keras loads in this
        process) runs on the first call and again once ``select_every`` more labels arrived, a new candidate
        became eligible, or the selected generative kind failed to fit. Returns a selection.Selected.

        A binary blend's logistic part alone serves (kind weak.LOGISTIC_PART, uncalibrated) until ``prequential``
        trusts the blend (prequential_choice).

        Raises ValueError when ``y`` holds a single class.
        """
        labeled = np.asarray(labeled, dtype=np.int64)
        y = self.labels_of(y)
        self.remember_served(labeled, y)
        if self.adaptive is not None:
            self.adaptive.observe(labeled, y)
        features = self.features_with_labels(labeled, y)
        X = features[labeled]
        pseudo_set = None
        if pseudo is not None and len(pseudo[0]):
            pseudo_set = (features[pseudo[0]], self.labels_of(pseudo[1]))
        weight = self.settings["human_weight"] if pseudo_set is not None else 1.0
        kinds = (weak.candidate_kinds(y, self.n_classes)
                 + (self.generative.kinds(y) if self.generative is not None else []))
        due = (self.selected is None or len(labeled) - self.selected_at >= self.settings["select_every"]
               or kinds != self.selected_kinds)
        if not due:
            try:
                model = selection.fit_final(self.selected.kind, X, y, pseudo_set, weight, self.seed,
                                            self.generative, self.categorical, self.n_classes)
            except generative_candidates.CandidateFailed:
                due = True  # the selected generative kind failed on the new labels: choose again
            else:
                model.calibration = self.selected.model.calibration
                self.selected = selection.Selected(model=model, kind=self.selected.kind,
                                                   metrics=self.selected.metrics)
        if due:
            self.selected = selection.select(X, y, pseudo_set, weight, kinds, self.settings["cv_folds"],
                                             self.settings["cv_repeats"], self.seed, self.generative,
                                             self.categorical, self.n_classes)
            self.selected_at = len(labeled)
            self.selected_kinds = kinds
        served = self.prequential_choice(self.selected)
        self.served = (labeled, served.model) if served.kind in (weak.BLEND, weak.LOGISTIC_PART) else None
        return served

    def prequential_choice(self, selected):
        """``selected``, or for a binary blend its logistic part alone (kind weak.LOGISTIC_PART, its own
        probabilities uncalibrated) unless the prequential record trusts the blend (Record.trusts_blend); the
        queue then follows the blend unless the record prefers the part (``queue_from_other``). Either way with
        the record's figures (models.prequential.Record.figures, and "serve_each") under "prequential" in the
        served kind's metrics."""
        if self.n_classes != 2 or selected.kind != weak.BLEND:
            return selected
        figures = {**self.prequential.figures(), "serve_each": prequential.SERVE_EACH}
        if self.prequential.trusts_blend():
            metrics = {**selected.metrics.get(weak.BLEND, {}), "prequential": figures}
            return selection.Selected(model=selected.model, kind=weak.BLEND,
                                      metrics={**selected.metrics, weak.BLEND: metrics})
        return selection.Selected(model=weak.WeakModel(weak.LOGISTIC_PART, selected.model.estimators,
                                                       selected.model.calibration),
                                  kind=weak.LOGISTIC_PART,
                                  metrics={**selected.metrics, weak.LOGISTIC_PART: {"prequential": figures}},
                                  queue_from_other=not self.prequential.prefers_logistic())

    def remember_served(self, labeled, y):
        """Add to the prequential record the labels among pool indices ``labeled`` (labels ``y``) that the last
        training served a blend or its part without, with that model's two scores."""
        if self.served is None:
            return
        before, model = self.served
        new = ~np.isin(labeled, before)
        if not new.any():
            return
        rows = self.pool_features()[labeled[new]]
        blend = weak.WeakModel(weak.BLEND, model.estimators)
        self.prequential.add(y[new], blend.raw(rows), blend.counterpart(rows))

    def features_of(self, X, anomaly=None):
        """The rows ``X`` as the models see them: the anomaly score appended when the settings say so."""
        if not self.settings["anomaly_feature"]:
            return X
        if anomaly is None:
            anomaly = strategies.anomaly_scores(X, self.scale)
        return np.column_stack([X, anomaly.astype(np.float32)])

    def features_with_labels(self, labeled, y):
        """The pool's rows for a training on pool indices ``labeled`` with labels ``y``: with their label rates
        (of the positive classes) when grouped, which scoring then uses too."""
        positive = np.isin(y, self.positives) if self.n_classes > 2 else y
        self.labels_seen = (np.asarray(labeled, dtype=np.int64), np.asarray(positive, dtype=np.int8))
        self.disagreement = None
        return self.pool_features()

    def committee_disagreement(self):
        """The committee's disagreement over the pool (models.committee.disagreement, binary datasets whose mix
        gives the committee a share, while the selected model ranks weakly: committee.wanted): computed once per
        training from its human labels, or as set from a stored file; None for K classes, without a committee
        share, for a model that ranks well, or before a training (the committee's share then goes to the
        uncertain picks)."""
        if self.disagreement is None and self.labels_seen is not None and self.n_classes == 2 \
                and self.settings["mix"].get(COMMITTEE, 0) > 0 \
                and committee.wanted(self.selected.auprc if self.selected is not None else None):
            labeled, y = self.labels_seen
            self.disagreement = committee.disagreement(self.pool_features(), labeled, y, seed=self.seed)
        return self.disagreement

    def pool_features(self):
        """The pool's rows as the models see them now: with the label rates of the last training, if grouped."""
        if self.groups is None or self.labels_seen is None:
            return self.features
        codes, seconds = self.groups
        rates = transaction_features.label_rates(codes, *self.labels_seen, seconds=seconds)
        return np.column_stack([self.features, rates])

    def score(self, model, X=None, groups=None):
        """Calibrated P(positive) of every pool item ((n, K) class probabilities for K classes), or of the rows
        ``X`` from outside the pool (with their ``groups``, (codes, seconds), when the learner has groups)."""
        if X is None:
            return model.predict(self.pool_features())
        rows = self.features_of(np.asarray(X, dtype=np.float32))
        if self.groups is not None and self.labels_seen is not None:
            if groups is None:
                raise ValueError("rows from outside the pool need their groups")
            labeled, y = self.labels_seen
            codes, seconds = self.groups
            rates = transaction_features.label_rates(codes, labeled, y, groups[0], seconds=seconds,
                                                     rows_seconds=groups[1])
            rows = np.column_stack([rows, rates])
        return model.predict(rows)

    def pseudo(self, p_positive, unlabeled):
        """(pool indices, labels) of the pseudo-labels for the next training, or None when switched off."""
        if not self.settings["pseudo_labels"]:
            return None
        limit = self.pseudo_limit()
        if self.n_classes > 2:
            return pseudo_labels.choose_classes(p_positive, unlabeled, self.ids, self.settings["pseudo_confidence"],
                                                limit, self.positives,
                                                self.settings["pseudo_positives"])
        return pseudo_labels.choose(p_positive, unlabeled, self.ids, self.settings["pseudo_confidence"], limit,
                                    self.settings["pseudo_positives"])

    def pseudo_limit(self):
        """The most pseudo-labels kept: ``pseudo_limit``, and at most ``pseudo_share`` of the pool (with the
        number alone a pool of 22,784 held 20,000 pseudo-labels from 50 human labels on)."""
        share = self.settings.get("pseudo_share", 1.0)
        return int(min(self.settings["pseudo_limit"], np.floor(share * len(self.ids))))

    def pick(self, p_positive, unlabeled, size, labeled_positives=None):
        """[(pool index, strategy)] of ``size`` items from the pool indices ``unlabeled``: the mix when a
        model scored the pool (``p_positive``), else the cold start. A binary cold start is COLD_START_SHARES of
        anomaly-led picks (anomalies spread over k-means clusters), typical items of parts of the pool no label
        covers ("diversity") and random ones; once its labels (the pool items not in ``unlabeled``) hold no
        positive after WIDEN_AFTER of them (``labeled_positives`` 0), the anomaly score is evidently not pointing
        at this table's positives and the search widens: models.adaptive's WIDER_SHARES of "wider search" and
        random picks. A K-class cold start takes the anomaly-led picks with the mix's exploration share drawn at
        random, or, when no class is positive, the pool's representatives (strategies.representatives). With
        the ``adaptive`` setting (binary datasets) models.adaptive picks: its own cold start, diversity while the
        model is young, and a bandit over the strategies."""
        if self.adaptive is not None:
            self.adaptive.anomaly = self.anomaly  # the caller may have replaced the cold start's score
            if labeled_positives is not None:
                self.adaptive.positives = int(labeled_positives)
            return self.adaptive.pick(p_positive, unlabeled, size)
        if p_positive is not None:
            return strategies.plan_batch(p_positive, self.z, unlabeled, size, self.settings["mix"], self.rng,
                                         self.settings["uncertainty"], self.positives,
                                         self.committee_disagreement())
        size = min(size, len(unlabeled))
        if self.n_classes == 2:
            mask = np.ones(len(self.ids), dtype=bool)
            mask[unlabeled] = False
            labeled = np.flatnonzero(mask)
            shares = adaptive_policy.cold_start_shares(len(labeled), labeled_positives, shares=COLD_START_SHARES)
            return adaptive_policy.cold_picks(self.z, self.anomaly, unlabeled, labeled, size, shares, self.rng,
                                              self.seed)
        if not self.positives:  # nothing rare to hunt: cover the pool
            return [(int(index), COLD_START) for index in
                    strategies.representatives(self.z, unlabeled, size, self.seed)]
        mix = self.settings["mix"]
        n_explore = int(round(size * mix.get(EXPLORATION, 0) / max(sum(mix.values()), 1e-12)))
        cold = strategies.cold_start(self.z, self.anomaly, unlabeled, size - n_explore, self.seed)
        rest = np.setdiff1d(unlabeled, cold)
        explore = self.rng.choice(rest, size=min(n_explore, len(rest)), replace=False)
        return strategies.interleave({COLD_START: cold, EXPLORATION: explore})
