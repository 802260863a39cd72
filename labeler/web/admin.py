"""Admin pages: agreement between analysts and with the model, a dataset's settings and the audit log, the
autoencoder's latent map of a dataset and the VAE's generated samples."""
from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_login import current_user

from labeler.data import agreement, audit, model_versions
from labeler.data.settings_changes import change_settings
from labeler.store.db import Dataset
from labeler.store.settings import CHOICES, EDITABLE, SettingsError, current_settings, default_settings
from labeler.web.access import admin_required, dataset_or_404
from labeler.web.generated import page_view, picture_png
from labeler.web.latent_map import map_view
from labeler.worker import jobs
from models.names import COMMITTEE_WEAK_BELOW

bp = Blueprint("admin", __name__, url_prefix="/admin")

MIX_FIELD = "mix:"  # the settings form's field of one strategy's share is "mix:" and the strategy's name


@bp.route("/datasets/<name>/agreement")
@admin_required
def agreement_page(name):
    dataset = dataset_or_404(name)
    return render_template("agreement.html", dataset=dataset, report=agreement.report(dataset))


@bp.route("/datasets/<name>/settings", methods=("GET", "POST"), endpoint="settings")
@admin_required
def settings_page(name):
    """A dataset's settings (the loop's and the labeling screen's) and their audit log; POST saves the fields
    sent (400 with one line, nothing stored, for a bad value)."""
    dataset = dataset_or_404(name)
    message = error = None
    if request.method == "POST":
        try:
            changed = change_settings(current_user, dataset, _changes(request.form))
        except SettingsError as bad:
            error = str(bad)
        else:
            message = ("Settings saved: " + "; ".join(f"{key} {_plain(old)} → {_plain(new)}"
                                                      for key, (old, new) in changed.items()) + "."
                       if changed else "Settings saved; nothing changed.")
    return render_template("settings.html", dataset=dataset, current=current_settings(dataset),
                           defaults=default_settings(dataset), choices=CHOICES, mix_field=MIX_FIELD, plain=_plain,
                           committee_weak_below=COMMITTEE_WEAK_BELOW,
                           entries=_audit_rows(audit.entries(dataset)), message=message,
                           error=error), 400 if error else 200


# the labeling settings' form used to post here (it lives on the settings page now)
bp.add_url_rule("/datasets/<name>/labeling-settings", "labeling_settings", settings_page, methods=("POST",))


@bp.route("/audit")
@admin_required
def audit_page():
    """The newest audit entries across datasets."""
    return render_template("audit.html", entries=_audit_rows(audit.entries()))


def _changes(form):
    """The settings a settings form sent: {name: text}, the mix as {strategy: text}, the generative candidates
    as the list of names ticked (the form's empty field marks the list as sent)."""
    changes = {key: form[key] for key in EDITABLE if key in form and key not in ("mix", "generative_candidates")}
    mix = {key[len(MIX_FIELD):]: value for key, value in form.items() if key.startswith(MIX_FIELD)}
    if mix:
        changes["mix"] = mix
    if "generative_candidates" in form:
        changes["generative_candidates"] = [name for name in form.getlist("generative_candidates") if name]
    return changes


def _audit_rows(entries):
    """Audit entries as the pages show them: who, when, action, dataset name and details as lines of text."""
    names = dict(Dataset.select(Dataset.id, Dataset.name).tuples())
    rows = []
    for entry in entries:
        lines = []
        for key, value in (entry.details or {}).items():
            if key == "changes" and isinstance(value, dict):
                lines += [f"{name}: {_plain(old)} → {_plain(new)}" for name, (old, new) in value.items()]
            else:
                lines.append(f"{key}: {_plain(value)}")
        rows.append({"at": entry.at, "who": entry.user_name or "command line", "action": entry.action,
                     "dataset": names.get(entry.dataset_id), "details": lines})
    return rows


def _plain(value):
    """A setting's value in words: on/off, numbers as written, lists and the mix joined by commas."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_plain(item)}" for key, item in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(item) for item in value) or "none"
    return str(value)


@bp.route("/datasets/<name>/models", endpoint="models")
@admin_required
def models_page(name):
    """Every model version of a dataset, newest first: its holdout figures, whether it serves and why."""
    dataset = dataset_or_404(name)
    return render_template("models.html", dataset=dataset, versions=model_versions.model_versions(dataset),
                           cross_validated=model_versions.CROSS_VALIDATED)


@bp.route("/datasets/<name>/latent-map")
@admin_required
def latent_map(name):
    dataset = dataset_or_404(name)
    return render_template("latent_map.html", dataset=dataset, view=map_view(dataset))


@bp.route("/datasets/<name>/generated", methods=("GET", "POST"))
@admin_required
def generated(name):
    """The VAE's generated samples (htmx: the part that polls while the job runs); POST queues the job."""
    dataset = dataset_or_404(name)
    if request.method == "POST":
        jobs.request(dataset, jobs.GENERATED, "asked on the generated-samples page")
        return redirect(url_for("admin.generated", name=name))
    view = page_view(dataset, lambda picture: url_for("admin.generated_png", name=name, picture=picture))
    template = "_generated.html" if request.headers.get("HX-Request") else "generated.html"
    return render_template(template, dataset=dataset, view=view)


@bp.route("/datasets/<name>/generated/<picture>.png")
@admin_required
def generated_png(name, picture):
    png = picture_png(dataset_or_404(name), picture)
    if png is None:
        abort(404)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-cache"})
