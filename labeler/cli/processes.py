"""``serve --processes N``: the web app under gunicorn, N worker processes of T threads each (the deploy extra).

Each worker process builds its own app from the configuration after the fork, so every process opens its own
store connections and task-queue client (the store also drops any connection a fork inherits:
labeler.store.db)."""
from gunicorn.app.base import BaseApplication

from labeler.web import create_app


class ProcessServer(BaseApplication):
    """gunicorn's arbiter serving ``create_app(settings)`` in ``processes`` processes of ``threads`` threads."""

    def __init__(self, settings, host, port, processes, threads, prepare):
        self.settings, self.prepare = settings, prepare
        self.options = {"bind": f"{host}:{port}", "workers": processes, "threads": threads,
                        "worker_class": "gthread", "proc_name": "labeler",
                        "control_socket_disable": True}  # no ~/.gunicorn/gunicorn.ctl: nothing here uses it
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        """In each worker process: its own app, templates compiled by ``prepare(app)``."""
        app = create_app(self.settings)
        self.prepare(app)
        return app
