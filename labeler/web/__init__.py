"""The web process: reads, leases, records and renders. It requests work from the worker through jobs and
never computes a model or a score (no scikit-learn, no TensorFlow here)."""
import os
import time

from flask import Flask, g, render_template, request
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from peewee import OperationalError

from labeler.config import ROOT, Config
from labeler.data.users import session_user
from labeler.store.db import database, full_disk_error, open_database
from labeler.store.migrations import upgrade
from labeler.web import admin, auth, dashboard, datasets, label, review
from labeler.web import api, api_tokens
from labeler.web import transfers, users
from labeler.web.security import init_security
from labeler.worker.jobs import task_queue

FULL_DISK_MESSAGE = ("The server's disk is full, so this was not saved (nothing saved before is lost). "
                     "Tell your admin, and try again once space is freed.")
MAX_UPLOAD_BYTES = 2 << 30  # an upload (the admins' import) larger than this is refused with 413
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in."


def create_app(test_config=None):
    """Build the Flask app on the configuration (labeler.config.Config: the LABELER_* environment variables,
    overridden by ``test_config``), open the store (upgrading its schema) and the task queue.

    SECRET_KEY has no default, so ``serve`` refuses to start without LABELER_SECRET_KEY.
    """
    config = Config.load(test_config)
    app = Flask(
        __name__,
        instance_path=config.INSTANCE_PATH,
        template_folder=os.path.join(ROOT, "templates"),
        static_folder=os.path.join(ROOT, "static"),
    )
    app.config.from_mapping(
        **config.as_dict(),
        ITEMS_PER_PAGE=50,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
    )
    if test_config:
        app.config.update({key: value for key, value in test_config.items() if key not in config.as_dict()})
    app.extensions["labeler.config"] = config
    os.makedirs(app.instance_path, exist_ok=True)

    open_database(config.DATABASE)
    with database.connection_context():
        upgrade()
    task_queue.open(config)

    @app.before_request
    def _start_clock():  # first, so the CSRF check and everything after it are timed
        g.request_clock = time.perf_counter()

    csrf.init_app(app)
    init_security(app)
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
        if request.path.startswith(api.PREFIX + "/"):
            return api.error_reply("not found", 404)
        return render_template("error.html", message="Not found."), 404

    @app.errorhandler(413)
    def _too_large(error):
        limit = app.config["MAX_CONTENT_LENGTH"]
        message = (f"The file is larger than the upload limit of {limit / (1 << 20):,.0f} MiB; nothing was saved. "
                   f"Import it on the server with python manage.py import.")
        return render_template("error.html", message=message), 413

    @app.errorhandler(403)
    def _forbidden(error):
        return render_template("error.html", message="Your role does not allow this."), 403

    @app.errorhandler(OperationalError)
    @app.errorhandler(OSError)
    def _full_disk(error):
        """A full disk is one line (507), not a 500: every write is one transaction, so nothing was stored, and
        the analyst's screen says to try again. Any other error goes on as a 500."""
        if full_disk_error(error) is None:
            raise error
        message = FULL_DISK_MESSAGE
        if request.headers.get("HX-Request"):  # the labeling screen shows the line above the item
            return message, 507, {"Content-Type": "text/plain; charset=utf-8"}
        return render_template("error.html", message=message), 507

    app.register_blueprint(auth.bp)
    app.register_blueprint(datasets.bp)
    app.register_blueprint(label.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(api_tokens.bp)
    csrf.exempt(api.bp)  # a token, never a cookie, authenticates there (labeler.web.api)
    app.register_blueprint(api.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(transfers.bp)

    return app


@login_manager.user_loader
def _load_user(session_id):
    """The user of a session cookie, or None (logged out) when the session was revoked by logout, a password
    change or disabling the user (labeler.data.users.session_user)."""
    return session_user(session_id)
