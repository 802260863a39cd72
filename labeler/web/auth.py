"""Log in and out: logins throttled per user name and per address, logout revoking the user's sessions."""
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from labeler.data.users import LoginRefused, end_sessions
from labeler.data.users import login as check_login

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
    """The login form. A wrong name or password answers 401; too many recent failures for the name or from the
    client's address answer 429 with one line saying when to retry (labeler.data.users.login). The address is
    the connection's: behind a reverse proxy, that is the proxy's."""
    error, status, headers = None, 200, {}
    if request.method == "POST":
        try:
            user = check_login(request.form.get("name"), request.form.get("password"), request.remote_addr)
        except LoginRefused as refused:
            error, status, headers = str(refused), 429, {"Retry-After": str(refused.retry_after)}
        else:
            if user is None or not login_user(user):
                error, status = "Unknown user or wrong password.", 401
            else:
                return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), status, headers


@bp.route("/logout", methods=("POST",))
@login_required
def logout():
    """Log out and revoke the session. Sessions live in the signed cookie, so revoking means bumping the user's
    session version: this logs the user out of every other browser too."""
    end_sessions(current_user)
    logout_user()
    return redirect(url_for("auth.login"))
