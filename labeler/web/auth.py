"""Log in and out."""
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user

from labeler.data.users import authenticate

bp = Blueprint("auth", __name__)


def _safe_next(target):
    """Only same-site paths are followed after login: not '//host', nor '/\\host' or control characters,
    which browsers read as '//host'."""
    target = target or ""
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(char) < 32 for char in target)):
        return url_for("datasets.index")
    return target


@bp.route("/login", methods=("GET", "POST"))
def login():
    error = None
    if request.method == "POST":
        user = authenticate(request.form.get("name"), request.form.get("password"))
        if user is None:
            error = "Unknown user or wrong password."
        else:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/logout", methods=("POST",))
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
