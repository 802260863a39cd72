"""Imports uploaded through the web: the web saves the file in the instance folder and requests an import job
(request_import); the worker runs it (run_import, the job's handler named in labeler.worker.jobs) with the
importer, all or nothing, then removes the file.

An import is one transaction, so the job's row cannot show its progress while it runs (the transaction holds the
store's write lock, and its own writes are invisible until it ends): the handler writes the percentage done to a
small file beside the upload instead, and job_view reads it.

The importer (pandas, pyarrow and the raw-transaction features) is imported where it is used, so that the web
process loads it only when an admin uploads a file, and never to show a page.
"""
import json
import os
import re
import secrets
import shutil

from labeler.data import audit
from labeler.data.errors import ImportFailed
from labeler.store.db import Dataset, Job, User, write_transaction
from labeler.store.files import write_atomically
from labeler.worker import jobs

SUFFIXES = (".csv.gz", ".csv", ".parquet")
FOLDER = "uploads"  # in the instance folder: one sub-folder of a random name per upload
PROGRESS = "progress.json"  # beside the upload: the running import's percentage done
NAME_LIMIT = 100  # characters of an upload's name kept before its suffix
RECENT = 10


def upload_name(filename):
    """The name an upload is saved under: the last part of ``filename`` with every character but ASCII letters,
    digits, '-' and '_' before its suffix replaced by '_'. Raises ImportFailed when no file was chosen, or for a
    file that is not CSV, CSV.gz or Parquet (by its suffix)."""
    base = os.path.basename((filename or "").replace("\\", "/")).strip()
    if not base:
        raise ImportFailed("choose a file to upload")
    suffix = next((suffix for suffix in SUFFIXES if base.lower().endswith(suffix)), None)
    if suffix is None:
        raise ImportFailed(f"{base!r} is not a CSV, CSV.gz or Parquet file (.csv, .csv.gz or .parquet)")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", base[:-len(suffix)])[:NAME_LIMIT].strip("_")
    return (stem or "upload") + suffix


def request_import(user, stream, filename, instance_path, dataset_name, **options):
    """Save the uploaded ``stream`` (a binary file object named ``filename`` by the browser) in a new folder
    under ``instance_path`` and queue an import job of it into the dataset ``dataset_name`` (created by the
    import when new) with import_file's ``options``, on behalf of ``user``; returns the Job.

    Raises ImportFailed (one line; nothing saved, nothing queued) for no file, a file that is not CSV, CSV.gz or
    Parquet, a bad name for a new dataset or a dataset of images; OSError when the file cannot be saved.
    """
    from labeler.data.importer import check_dataset_name

    name = upload_name(filename)
    dataset = Dataset.get_or_none(Dataset.name == dataset_name)
    if dataset is None:
        check_dataset_name(dataset_name)
    elif dataset.image_shape:
        raise ImportFailed(f"dataset {dataset_name!r} holds images: import them with python manage.py import")
    folder = os.path.join(instance_path, FOLDER, secrets.token_hex(16))
    os.makedirs(folder)
    path = os.path.join(folder, name)
    try:
        with open(path, "xb") as saved:
            shutil.copyfileobj(stream, saved, 1 << 20)
        job, _ = jobs.request(dataset, jobs.IMPORT, f"uploaded by {user.name}",
                              options={"path": path, "dataset_name": dataset_name, "file_name": name,
                                       "user_id": user.id, **options})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return job


def run_import(dataset, progress, config, path, dataset_name, file_name, user_id=None, **options):
    """The import job's handler (labeler.worker.jobs): import_file of the upload at ``path`` into
    ``dataset_name`` with ``options``, recorded in the audit log (IMPORTED, by user ``user_id``) in the same
    transaction; then the jobs an import queues (queue refill, autoencoder, and the sequences of raw transactions
    with a card history). The upload's folder is removed whatever happens. Returns the job's summary: the counts
    and the importer's notes.

    Raises ImportFailed (one line, also kept in the job's payload as ``import_error``; the store unchanged).
    """
    from labeler.data.importer import import_file
    from labeler.data.transactions import has_history

    folder = os.path.dirname(path)
    progress(f"importing {file_name}", 0)
    try:
        with write_transaction():
            result = import_file(path, dataset_name, progress=lambda done, total: _write_progress(
                folder, 100 * done / max(total, 1)), **options)
            audit.record(User.get_or_none(User.id == user_id), audit.IMPORTED, result.dataset, file=file_name,
                         created=result.created, rows_read=result.rows_read, rows_added=result.rows_added,
                         rows_skipped=result.rows_skipped)
    except ImportFailed as error:
        progress.record(import_error=str(error))
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    queued = {}
    if result.rows_added:
        kinds = [jobs.REFILL, jobs.AUTOENCODER] + ([jobs.SEQUENCES] if has_history(result.dataset.roles or {}) else [])
        for kind in kinds:
            queued[kind] = jobs.request(result.dataset, kind, "after an upload")[0].id
    verb = "created" if result.created else "updated"
    return {"stage": f"dataset {dataset_name!r} {verb}: {result.rows_added:,} rows added",
            "dataset": result.dataset.name, "created": result.created, "rows_read": result.rows_read,
            "rows_added": result.rows_added, "rows_skipped": result.rows_skipped, "notes": list(result.notes),
            "queued": queued}


def _write_progress(folder, percent):
    write_atomically(os.path.join(folder, PROGRESS), lambda stream: stream.write(json.dumps(percent).encode()))


def _read_progress(folder):
    """The percentage done of the running import whose upload is in ``folder``, or None (none written yet, or
    the import ended and took the folder with it)."""
    try:
        with open(os.path.join(folder, PROGRESS), encoding="utf-8") as stream:
            return float(json.load(stream))
    except (OSError, ValueError, TypeError):
        return None


def job_view(job):
    """What the upload's progress component shows of import job ``job``: a dict with ``id``, ``state``,
    ``pending`` (queued or running: the component polls), ``percent`` (while it runs, from the progress file),
    ``file``, ``dataset`` (the target's name), when done ``summary`` (the handler's counts and notes), when failed
    ``error`` (the importer's one line, else the job's error)."""
    payload = job.payload or {}
    options = payload.get("options", {})
    running = job.state == "running" and options.get("path")
    return {"id": job.id, "state": job.state, "pending": job.state in ("queued", "running"),
            "percent": (_read_progress(os.path.dirname(options["path"])) if running else None) or 0.0,
            "file": options.get("file_name"), "dataset": options.get("dataset_name"),
            "summary": payload if job.state == "done" else None,
            "error": (payload.get("import_error") or job.error) if job.state == "failed" else None}


def recent_imports(limit=RECENT):
    """job_view of the newest ``limit`` import jobs, newest first."""
    return [job_view(job) for job in
            Job.select().where(Job.kind == jobs.IMPORT).order_by(Job.id.desc()).limit(limit)]
