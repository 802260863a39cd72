"""Files in and out for admins: an upload (CSV, CSV.gz or Parquet) saved in the instance folder and imported by
the worker, its progress polled by a component that replaces itself; an export downloaded as a file.

The web only saves the upload and requests the job (labeler.data.uploads); the import runs in the worker."""
import datetime
import os
import shutil
import tempfile

from flask import Blueprint, abort, current_app, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from labeler.data import datasets as datasets_service
from labeler.data import exporter, uploads
from labeler.data.errors import ImportFailed
from labeler.store.db import Job
from labeler.web.access import admin_required, dataset_or_404
from labeler.worker import jobs

bp = Blueprint("transfers", __name__, url_prefix="/admin")

TEXT_OPTIONS = ("label_column", "id_column", "time_column", "amount_column")  # import_file's options, one column
LIST_OPTIONS = ("exclude", "ignore", "entity_columns", "categorical", "labels", "positive_labels")  # comma lists
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def import_options(form):
    """import_file's options from the upload form: the fields filled in, lists split on commas."""
    options = {key: form[key].strip() for key in TEXT_OPTIONS if form.get(key, "").strip()}
    for key in LIST_OPTIONS:
        values = [value.strip() for value in form.get(key, "").split(",") if value.strip()]
        if values:
            options[key] = values
    return options


@bp.route("/import", methods=("GET", "POST"))
@admin_required
def import_page():
    """The upload form and the latest imports; POST saves the file, queues its import and shows its progress
    (400 with one line, nothing saved, for no file, another type of file or a bad dataset name)."""
    error = None
    if request.method == "POST":
        upload = request.files.get("file")
        try:
            job = uploads.request_import(current_user, upload and upload.stream, upload and upload.filename,
                                         current_app.instance_path, request.form.get("dataset", "").strip(),
                                         **import_options(request.form))
        except ImportFailed as refused:
            error = str(refused)
        else:
            return redirect(url_for("transfers.import_job", job_id=job.id), code=303)
    names = [summary["dataset"].name for summary in datasets_service.summaries()]
    return render_template("import.html", form=request.form, error=error, names=names,
                           recent=uploads.recent_imports()), 400 if error else 200


@bp.route("/import/<int:job_id>")
@admin_required
def import_job(job_id):
    """One upload's import: the page, or (htmx) the component that polls itself while the job waits or runs."""
    job = Job.get_or_none((Job.id == job_id) & (Job.kind == jobs.IMPORT))
    if job is None:
        abort(404)
    template = "_import_job.html" if request.headers.get("HX-Request") else "import_job.html"
    return render_template(template, view=uploads.job_view(job))


@bp.route("/datasets/<name>/export", methods=("POST",))
@admin_required
def export(name):
    """The dataset's labeled items as a CSV or JSONL download (exporter.export, recorded in the audit log),
    written to a temporary file that is gone once sent; 400 with one line for another format."""
    dataset = dataset_or_404(name)
    fmt = request.form.get("format", "csv")
    if fmt not in FORMATS:
        return render_template("error.html", message=f"Unknown export format {fmt!r}: choose csv or jsonl."), 400
    download = f"{dataset.name}-{datetime.date.today():%Y-%m-%d}.{fmt}"
    folder = tempfile.mkdtemp(prefix="export-", dir=current_app.instance_path)
    try:
        path = os.path.join(folder, f"export.{fmt}")
        exporter.export(dataset, path, fmt, request.form.get("include_pseudo") == "1", user=current_user)
        stream = open(path, "rb")  # read after the folder is gone: the open file keeps its data
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return send_file(stream, mimetype=FORMATS[fmt], as_attachment=True, download_name=download)
