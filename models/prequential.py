"""The prequential choice between the binary blend and its logistic part: each human label is scored, before it
was given, by the blend and by that blend's logistic part alone. The record plays two roles (models.learner):
- the queue: once it holds MIN_EACH labels of each class and the logistic part ranked them better (average
  precision over all of them), the logistic part picks the queue and the pseudo-labels; otherwise the blend does,
  which finds positives sooner on tables like the credit card.
- the served scores (the suggestions, the holdout figures, the gate): the blend's only once the record holds
  SERVE_EACH of each class and the blend ranked them at least as well; before, the logistic part's. At its first
  fits (10 labels of each class) the blend ranks worse than its own logistic part on every table of the suite
  (bench/results/suite_wage_fresh.txt), and picking with it is what pays.

Why: on some tables the logistic model alone ranks better than its mean with boosting for hundreds of labels
(ISLP's Default and Wage), on others the blend does (the credit card, Caravan), and cross-validation on a few
hundred labels cannot tell them apart (bench/results/suite_model_choice_dev.txt). Labels scored before they were
given are an honest test set that grows with the labeling, and costs no extra fit.
"""
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score

MIN_EACH = 5  # the record decides once it holds this many labels of each class
# the blend's scores serve once the record holds this many labels of each class and the blend ranked them at least
# as well as its logistic part; until then the part serves and the blend picks the queue (models.learner). Wage at
# 100 labels +0.009 (0.004) and +0.007 (0.003) AUPRC on development seeds 10-89 and 130-229, no other table of the
# suite changed (bench/results/suite_serve_dev.txt)
SERVE_EACH = 10


@dataclass
class Record:
    """Binary labels (``truth``) with the blend's and its logistic part's P(positive) of each item from the model
    that served before the label was given."""

    truth: list = field(default_factory=list)
    blend: list = field(default_factory=list)
    logistic: list = field(default_factory=list)

    def add(self, truth, blend, logistic):
        """Append labels and their two scores (equal-length sequences). Raises ValueError when the lengths
        differ."""
        if not len(truth) == len(blend) == len(logistic):
            raise ValueError(f"a prequential record needs as many scores as labels ({len(truth)}, {len(blend)}, "
                             f"{len(logistic)})")
        self.truth.extend(int(value) for value in truth)
        self.blend.extend(float(value) for value in blend)
        self.logistic.extend(float(value) for value in logistic)

    def figures(self, min_each=MIN_EACH):
        """{"labels", "positives", "blend_ap", "logistic_ap"} of the record, the two average precisions None until
        it holds ``min_each`` labels of each class."""
        truth = np.asarray(self.truth, dtype=np.int8)
        positives = int(truth.sum())
        if min(positives, len(truth) - positives) < min_each:
            return {"labels": len(truth), "positives": positives, "blend_ap": None, "logistic_ap": None}
        return {"labels": len(truth), "positives": positives,
                "blend_ap": float(average_precision_score(truth, self.blend)),
                "logistic_ap": float(average_precision_score(truth, self.logistic))}

    def prefers_logistic(self, min_each=MIN_EACH):
        """True when the record holds ``min_each`` labels of each class and the logistic part ranked them better
        than the blend."""
        figures = self.figures(min_each)
        return figures["blend_ap"] is not None and figures["logistic_ap"] > figures["blend_ap"]

    def trusts_blend(self, min_each=SERVE_EACH):
        """True when the record holds ``min_each`` labels of each class and the blend ranked them at least as well
        as its logistic part."""
        figures = self.figures(min_each)
        return figures["blend_ap"] is not None and figures["blend_ap"] >= figures["logistic_ap"]
