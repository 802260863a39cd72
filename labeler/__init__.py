"""labeler: a keyboard-driven web tool for labeling card transactions with active learning."""
import os
import time

from flask import Flask, g, render_template
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect

from labeler.db import User, database, open_database
from labeler.migrations import upgrade

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in."


def create_app(test_config=None):
    """Build the Flask app. Settings come from ``test_config`` or the LABELER_* environment variables.

    LABELER_DATABASE: a SQLite path or database URL (default: labeler.sqlite3 in the instance folder).
    LABELER_SECRET_KEY: signs sessions; there is no default, so the server refuses to start without it.
    """
    app = Flask(
        __name__,
        instance_path=os.environ.get("LABELER_INSTANCE") or os.path.join(ROOT, "instance"),
        template_folder=os.path.join(ROOT, "templates"),
        static_folder=os.path.join(ROOT, "static"),
    )
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("LABELER_SECRET_KEY") or None,
        DATABASE=os.environ.get("LABELER_DATABASE")
        or os.path.join(app.instance_path, "labeler.sqlite3"),
        ITEMS_PER_PAGE=50,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)

    open_database(app.config["DATABASE"])
    with database.connection_context():
        upgrade()

    @app.before_request
    def _start_clock():  # first, so the CSRF check and everything after it are timed
        g.request_clock = time.perf_counter()

    csrf.init_app(app)
    login_manager.init_app(app)

    @app.after_request
    def _server_timing(response):
        """The request's time in the app (Server-Timing header; bench/label_latency.py reads it)."""
        started = g.get("request_clock")
        if started is not None:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response

    @app.before_request
    def _connect():
        g.opened_database = database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if g.pop("opened_database", False) and not database.is_closed():
            database.close()

    @app.errorhandler(CSRFError)
    def _csrf_error(error):
        message = f"Your form has expired or was not sent by this page ({error.description}). Reload and try again."
        return render_template("error.html", message=message), 400

    @app.errorhandler(404)
    def _not_found(error):
        return render_template("error.html", message="Not found."), 404

    @app.errorhandler(403)
    def _forbidden(error):
        return render_template("error.html", message="Your role does not allow this."), 403

    from labeler.views import admin, auth, datasets, label

    app.register_blueprint(auth.bp)
    app.register_blueprint(datasets.bp)
    app.register_blueprint(label.bp)
    app.register_blueprint(admin.bp)

    from labeler.cli import register_commands

    register_commands(app)
    return app


@login_manager.user_loader
def _load_user(user_id):
    return User.get_or_none(User.id == int(user_id))
