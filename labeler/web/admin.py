"""Admin pages: agreement between analysts and with the model, a dataset's labeling settings, and the
autoencoder's latent map of a dataset."""
from flask import Blueprint, abort, render_template, request

from labeler.data import agreement
from labeler.data import datasets as datasets_service
from labeler.store.settings import SettingsError, labeling_settings, update_labeling_settings
from labeler.web.access import admin_required
from labeler.web.latent_map import map_view

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
