"""Old model versions' files (labeler.worker.retention): real retrains on the sample, then the files of the
versions that nothing reads any more are removed, and those still read are kept."""
import os

from labeler.store.db import Item, Label, ModelVersion, QueueEntry, Standing
from labeler.store.serving import serving_scores, version_problem
from labeler.worker import jobs
from labeler.worker.retention import FILE_FIELDS, KEEP_SERVED, prune_version_files
from labeler.worker.retrain import retrain
from tests.test_retraining import label_truth


def files_of(version):
    return [getattr(version, field) for field in FILE_FIELDS if getattr(version, field)]


def test_the_files_of_old_versions_go_and_those_still_read_stay(app, config, quick, analyst, tmp_path):
    labeled = label_truth(quick, analyst, frauds=20, genuine=200)
    versions = [ModelVersion.get_by_id(retrain(quick, str(tmp_path))["model_version"]) for _ in range(5)]
    assert all(version.served_at is not None and files_of(version) for version in versions)
    old, recent = versions[:-KEEP_SERVED], versions[-KEEP_SERVED:]
    # still read: an entry of the queue picked by the oldest, and a label given on the second's suggestion
    entry = QueueEntry.select().where(QueueEntry.dataset == quick).first()
    QueueEntry.update(model_version=old[0].id).where(QueueEntry.id == entry.id).execute()
    unlabeled = Item.select().where((Item.dataset == quick) & Item.id.not_in(labeled)).first()
    Label.create(item=unlabeled, value="genuine", annotator=analyst, source="human", model_version=old[1].id)
    Standing.refresh([unlabeled.id])
    assert prune_version_files(quick) == (0, 0)

    QueueEntry.update(model_version=versions[-1].id).where(QueueEntry.id == entry.id).execute()
    sizes = sum(os.path.getsize(path) for path in files_of(old[0]))
    assert prune_version_files(quick) == (1, sizes)
    gone = ModelVersion.get_by_id(old[0].id)
    assert not files_of(gone) and not any(os.path.exists(path) for path in files_of(old[0]))
    assert gone.metrics == {**old[0].metrics, "files_removed": True}  # its figures stay
    assert version_problem(gone) == "its files were removed, as an old version's (labeler.worker.retention)"
    assert all(os.path.exists(path) for version in [old[1], *recent] for path in files_of(version))
    assert serving_scores(quick).version.id == versions[-1].id

    # the next retrain job records that label with the second's scores, then removes the second's files too
    Label.create(item=labeled[0], value="fraud", annotator=analyst, source="human")  # something new to learn
    Standing.refresh([labeled[0]])
    job, _ = jobs.request(quick, jobs.RETRAIN, "test")
    assert jobs.run(job.id, config) == "done"
    payload = jobs.latest(quick, jobs.RETRAIN).payload
    assert payload["serving"] and payload["pruned"]["versions"] == 2  # the second, and the oldest of the recent
    assert not files_of(ModelVersion.get_by_id(old[1].id)) and not files_of(ModelVersion.get_by_id(recent[0].id))
    assert all(files_of(ModelVersion.get_by_id(version.id)) for version in recent[1:])
