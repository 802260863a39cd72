"""Admin pages: agreement between analysts and with the model, a dataset's labeling settings, the
autoencoder's latent map of a dataset and the VAE's generated samples."""
from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from labeler.data import agreement
from labeler.data import datasets as datasets_service
from labeler.store.settings import SettingsError, labeling_settings, update_labeling_settings
from labeler.web.access import admin_required
from labeler.web.generated import page_view, picture_png
from labeler.web.latent_map import map_view
from labeler.worker import jobs

bp = Blueprint("admin", __name__, url_prefix="/admin")

SETTING_FIELDS = ("overlap_share", "hide_suggestion_share", "reject_mode", "reason_codes", "lease_minutes",
                  "skip_minutes", "refill_below")


def _dataset(name):
    try:
        return datasets_service.get_dataset(name)
    except datasets_service.DatasetNotFound:
        abort(404)


def _page(dataset, message=None, error=None, status=200):
    return render_template("agreement.html", dataset=dataset, report=agreement.report(dataset),
                           settings=labeling_settings(dataset), message=message, error=error), status


@bp.route("/datasets/<name>/agreement")
@admin_required
def agreement_page(name):
    return _page(_dataset(name))


@bp.route("/datasets/<name>/labeling-settings", methods=("POST",), endpoint="labeling_settings")
@admin_required
def save_labeling_settings(name):
    dataset = _dataset(name)
    changes = {key: request.form[key] for key in SETTING_FIELDS if key in request.form}
    try:
        update_labeling_settings(dataset, changes)
    except SettingsError as error:
        return _page(dataset, error=str(error), status=400)
    return _page(dataset, message="Labeling settings saved.")


@bp.route("/datasets/<name>/latent-map")
@admin_required
def latent_map(name):
    dataset = _dataset(name)
    return render_template("latent_map.html", dataset=dataset, view=map_view(dataset))


@bp.route("/datasets/<name>/generated", methods=("GET", "POST"))
@admin_required
def generated(name):
    """The VAE's generated samples (htmx: the part that polls while the job runs); POST queues the job."""
    dataset = _dataset(name)
    if request.method == "POST":
        jobs.request(dataset, jobs.GENERATED, "asked on the generated-samples page")
        return redirect(url_for("admin.generated", name=name))
    view = page_view(dataset, lambda picture: url_for("admin.generated_png", name=name, picture=picture))
    template = "_generated.html" if request.headers.get("HX-Request") else "generated.html"
    return render_template(template, dataset=dataset, view=view)


@bp.route("/datasets/<name>/generated/<picture>.png")
@admin_required
def generated_png(name, picture):
    png = picture_png(_dataset(name), picture)
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-cache"})
