"""Which model version's stored scores serve a dataset's queue: scores, not models, reach the web.

A retrain (labeler.worker.retrain) writes the P(positive) of every pool item to a scores file with its sha256;
the queue refill reads it from here. A missing or corrupt scores file is detected by its checksum, and the
newest earlier version that served and whose file is intact serves instead, else the cold start.
"""
import os
from dataclasses import dataclass

import numpy as np

from labeler.store.db import ModelVersion
from labeler.store.files import file_digest, load_scores


@dataclass
class Serving:
    """Whose stored scores the queue uses: ``version`` (None: the cold start), its ``scores`` when they were
    loaded, ``serving_id`` (the id of the version marked serving, None when none is) and ``notice``: one line
    saying which file is unusable and what serves instead (None when the serving version's file is intact)."""

    version: ModelVersion = None
    scores: np.ndarray = None
    serving_id: int = None
    notice: str = None


def serving_version(dataset):
    """The ModelVersion marked serving ``dataset``, or None."""
    return ModelVersion.get_or_none((ModelVersion.dataset == dataset) & (ModelVersion.serving == True))  # noqa: E712


def version_name(version):
    """How the status line names a ModelVersion, or the cold start for None."""
    return "cold start" if version is None else f"model {version.id}"


def version_problem(version):
    """None when ``version``'s scores file is there and unchanged since written, else one line naming the file
    and what is wrong with it."""
    path, digest = version.scores_path, (version.digests or {}).get("scores")
    if (version.metrics or {}).get("files_removed"):
        return "its files were removed, as an old version's (labeler.worker.retention)"
    if not path or not digest:
        return "no scores file with a checksum recorded (trained before retrains stored scores)"
    try:
        found = file_digest(path)
    except FileNotFoundError:
        return f"scores file {os.path.basename(path)} is missing"
    except OSError as error:
        return f"scores file {os.path.basename(path)} cannot be read ({error.strerror})"
    if found != digest:
        return f"scores file {os.path.basename(path)} is corrupt"
    return None


def serving_scores(dataset, pool_size=None):
    """The version whose stored scores serve ``dataset``'s queue: the serving one when its scores file is
    intact, else the newest earlier version that served and whose file is intact, else the cold start. With
    ``pool_size`` the scores are loaded too (a file longer than the pool counts as unusable). Returns a Serving."""
    serving = serving_version(dataset)
    if serving is None:
        return Serving()
    earlier = (ModelVersion.select()
               .where((ModelVersion.dataset == dataset) & ModelVersion.served_at.is_null(False)
                      & (ModelVersion.id < serving.id))
               .order_by(ModelVersion.id.desc()))
    first_problem = None
    for version in [serving, *earlier]:
        problem = version_problem(version)
        scores = None
        if problem is None and pool_size is not None:
            try:
                scores = load_scores(version.scores_path, version.digests["scores"])
                if len(scores) > pool_size:
                    problem = f"scores file scored {len(scores):,} items, the pool has {pool_size:,}"
            except (OSError, ValueError) as error:
                problem = f"scores file unusable: {error}"
        if problem is None:
            notice = None if version is serving else f"{version_name(serving)}: {first_problem}; serving " \
                                                     f"{version_name(version)} instead"
            return Serving(version, scores, serving.id, notice)
        first_problem = first_problem or problem
    return Serving(None, None, serving.id, f"{version_name(serving)}: {first_problem}; serving the cold start instead")
