"""The prequential choice between the binary blend and its logistic part: each human label is scored, before it
was given, by the blend that served and by that blend's logistic part alone; while the logistic part ranked those
labels better (average precision over all of them), the learner serves it instead of the blend.

Why: on some tables the logistic model alone ranks better than its mean with boosting for hundreds of labels
(ISLP's Default and Wage), on others the blend does (the credit card, Caravan), and cross-validation on a few
hundred labels cannot tell them apart (bench/results/suite_model_choice_dev.txt). Labels scored before they were
given are an honest test set that grows with the labeling, and costs no extra fit.
"""
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score

MIN_EACH = 5  # the record decides once it holds this many labels of each class


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
        """{"labels", "blend_ap", "logistic_ap"} of the record, the two average precisions None until it holds
        ``min_each`` labels of each class."""
        truth = np.asarray(self.truth, dtype=np.int8)
        positives = int(truth.sum())
        if min(positives, len(truth) - positives) < min_each:
            return {"labels": len(truth), "blend_ap": None, "logistic_ap": None}
        return {"labels": len(truth), "blend_ap": float(average_precision_score(truth, self.blend)),
                "logistic_ap": float(average_precision_score(truth, self.logistic))}

    def prefers_logistic(self, min_each=MIN_EACH):
        """True when the record holds ``min_each`` labels of each class and the logistic part ranked them better
        than the blend."""
        figures = self.figures(min_each)
        return figures["blend_ap"] is not None and figures["logistic_ap"] > figures["blend_ap"]
