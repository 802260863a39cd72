"""Old model versions' files. Every retrain that serves writes four bytes per pool item into each of up to four
files (the pool's scores, its twin's holdout scores, the counterpart's and the committee's): 120-160 MB a
version at 10 million transactions, at a retrain every 10 to 50 labels. The retrain then removes the files of the
versions that nothing reads any more (``prune_version_files``); their rows stay, with their figures and gate.
"""
from labeler.store.db import Lease, ModelVersion, QueueEntry, write_transaction
from labeler.store.files import remove_files
from labeler.worker.prequential import pending_versions

KEEP_SERVED = 3  # the serving version and the two that served before it: serving_scores falls back on them
FILE_FIELDS = ("scores_path", "holdout_path", "counterpart_path", "committee_path")


def prune_version_files(dataset, keep_served=KEEP_SERVED):
    """Remove the files of ``dataset``'s model versions that nothing reads any more, and clear their paths;
    returns (versions pruned, bytes freed). Kept: the newest ``keep_served`` versions that served (the serving
    one, and the earlier ones serving_scores turns to when its file is damaged); any version that a queue entry
    or a lease still carries (the label given on it joins the prequential record with that version's scores);
    any version whose labels are not in the prequential record yet. A file already gone, or one that cannot be
    removed, frees nothing (its path is cleared all the same: the retrain that switched models never fails here)."""
    versions = list(ModelVersion.select()
                    .where((ModelVersion.dataset == dataset) & ModelVersion.served_at.is_null(False))
                    .order_by(ModelVersion.id.desc()))
    kept = {version.id for version in versions[:keep_served]}
    kept |= {version_id for (version_id,) in QueueEntry.select(QueueEntry.model_version).distinct()
             .where((QueueEntry.dataset == dataset) & QueueEntry.model_version.is_null(False)).tuples()}
    kept |= {version_id for (version_id,) in Lease.select(Lease.model_version).distinct()
             .where((Lease.dataset == dataset) & Lease.model_version.is_null(False)).tuples()}
    kept |= pending_versions(dataset)
    old = [version for version in versions
           if version.id not in kept and any(getattr(version, field) for field in FILE_FIELDS)]
    if not old:
        return 0, 0
    with write_transaction():  # no reader looks for the files from here on
        for version in old:
            ModelVersion.update(**{field: None for field in FILE_FIELDS},
                                metrics={**(version.metrics or {}), "files_removed": True}).where(
                ModelVersion.id == version.id).execute()
    freed = 0
    for version in old:
        for path in filter(None, (getattr(version, field) for field in FILE_FIELDS)):
            try:
                freed += remove_files([path])
            except OSError:
                continue
    return len(old), freed
