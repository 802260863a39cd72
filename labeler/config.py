"""One configuration for every process: the web app, the worker and the command line read it from here.

Values come from the LABELER_* environment variables, overridden by a mapping (create_app's ``test_config``):

| key | environment | default |
| --- | --- | --- |
| INSTANCE_PATH | LABELER_INSTANCE | ``instance/`` beside the package |
| DATABASE | LABELER_DATABASE | ``labeler.sqlite3`` in the instance folder |
| SECRET_KEY | LABELER_SECRET_KEY | none: ``serve`` refuses to start without it |
| TASK_QUEUE | LABELER_QUEUE | ``queue.sqlite3`` in the instance folder (Huey's SQLite storage) |
| REDIS_URL | LABELER_REDIS_URL | unset; when set the task queue lives in Redis (several machines) |
| MODEL_FOLDER | LABELER_MODELS | ``models`` beside a SQLite store, else in the instance folder |
| SESSION_COOKIE_SECURE | LABELER_SECURE_COOKIES | off; ``1`` (``true``, ``on``): the cookie goes over HTTPS only |

Only the standard library here: every layer may import it.
"""
import os
from dataclasses import asdict, dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT = {
    "INSTANCE_PATH": "LABELER_INSTANCE",
    "DATABASE": "LABELER_DATABASE",
    "SECRET_KEY": "LABELER_SECRET_KEY",
    "TASK_QUEUE": "LABELER_QUEUE",
    "REDIS_URL": "LABELER_REDIS_URL",
    "MODEL_FOLDER": "LABELER_MODELS",
    "SESSION_COOKIE_SECURE": "LABELER_SECURE_COOKIES",
}
PLACES = ("INSTANCE_PATH", "DATABASE", "TASK_QUEUE", "MODEL_FOLDER")  # where the store and its files are
FLAGS = ("SESSION_COOKIE_SECURE",)  # on/off settings: a true or false value, not a string
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def flag(value, variable):
    """A bool from an on/off setting's value (a bool, or a string from the environment). Raises ValueError."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ValueError(f"{variable}: expected one of {', '.join(TRUE + FALSE[1:])}, got {value!r}")


@dataclass(frozen=True)
class Config:
    """Where the store, the task queue and the model files are, and the secret that signs sessions."""

    INSTANCE_PATH: str
    DATABASE: str
    SECRET_KEY: str
    TASK_QUEUE: str
    REDIS_URL: str
    MODEL_FOLDER: str
    SESSION_COOKIE_SECURE: bool = False

    @classmethod
    def load(cls, overrides=None, environ=None):
        """The configuration from ``environ`` (default: os.environ) with ``overrides`` (a mapping of the keys
        above; other keys are ignored here) applied, defaults filled in."""
        environ = os.environ if environ is None else environ
        overrides = overrides or {}
        given = {key: overrides.get(key) or environ.get(variable) or None for key, variable in ENVIRONMENT.items()
                 if key not in FLAGS}
        flags = {key: flag(overrides[key] if key in overrides else environ.get(ENVIRONMENT[key]), ENVIRONMENT[key])
                 for key in FLAGS}
        instance = os.path.abspath(given["INSTANCE_PATH"] or os.path.join(ROOT, "instance"))
        database = given["DATABASE"] or os.path.join(instance, "labeler.sqlite3")
        return cls(
            INSTANCE_PATH=instance,
            DATABASE=database,
            SECRET_KEY=given["SECRET_KEY"],
            TASK_QUEUE=given["TASK_QUEUE"] or os.path.join(instance, "queue.sqlite3"),
            REDIS_URL=given["REDIS_URL"],
            MODEL_FOLDER=given["MODEL_FOLDER"] or default_model_folder(database, instance),
            **flags,
        )

    @classmethod
    def in_folder(cls, folder, environ=None):
        """The configuration whose store, task queue and model folder are those of the instance folder ``folder``
        (the command line's --instance), whatever LABELER_DATABASE, LABELER_QUEUE and LABELER_MODELS say; the
        other settings come from ``environ`` (default: os.environ) as for load."""
        environ = os.environ if environ is None else environ
        placed = {ENVIRONMENT[key] for key in PLACES}
        return cls.load({"INSTANCE_PATH": folder},
                        {name: value for name, value in environ.items() if name not in placed})

    def as_dict(self):
        """The settings as a dict, for ``app.config``."""
        return asdict(self)

    def environment(self):
        """The LABELER_* variables that give another process (the demo's server and worker) this configuration."""
        return {variable: "1" if key in FLAGS else getattr(self, key)
                for key, variable in ENVIRONMENT.items() if getattr(self, key)}


def default_model_folder(database, instance):
    """``models`` beside a SQLite store file, else ``models`` in the instance folder."""
    if "://" not in database or database.startswith("sqlite:///"):
        path = database[len("sqlite:///"):] if database.startswith("sqlite:///") else database
        if path != ":memory:":
            return os.path.join(os.path.dirname(os.path.abspath(path)), "models")
    return os.path.join(instance, "models")
