"""The store's commands: init-db, import, the user commands (create-user, set-password, disable-user,
enable-user), serve, export, stats and the demo."""
import gc
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile

import click
from flask import current_app
from flask.cli import with_appcontext
from threadpoolctl import threadpool_limits
from waitress import serve

from labeler.cli.common import configuration, dataset_named, fail, stops_on_full_disk
from labeler.config import ROOT, Config
from labeler.data import datasets as datasets_service
from labeler.data import exporter
from labeler.data import tokens as tokens_service
from labeler.data.images import import_images, is_image_source
from labeler.data.importer import ImportFailed, import_file
from labeler.data.transactions import describe as describe_roles
from labeler.data.transactions import has_history
from labeler.data.users import UserError, create_user, set_disabled, set_password
from labeler.store.db import User, database
from labeler.store.migrations import upgrade
from labeler.web import create_app
from labeler.worker import jobs

SAMPLE_PATH = os.path.join(ROOT, "data", "creditcard_sample.csv.gz")
DEMO_DATASET = "creditcard-sample"
TRANSACTIONS_PATH = os.path.join(ROOT, "data", "transactions_sample.csv.gz")
TRANSACTIONS_DATASET = "transactions-sample"
DIGITS_PATH = os.path.join(ROOT, "data", "digits.npz")
DIGITS_DATASET = "digits"
TRANSACTION_ROLES = {"time_column": "timestamp", "entity_columns": ("card_id", "merchant_id"), "categorical": (),
                     "amount_column": "amount", "ignore": ("scenario",)}
SERVE_THREADS = 2
MIN_SECRET_KEY_LENGTH = 32  # the key signs the session cookies: a short one can be guessed offline


def _run_import(path, dataset, label_column, id_column, exclude, labels, roles=None):
    """Import with a progress bar when stderr is a terminal (silent otherwise, so an error stays one line);
    returns the ImportResult. ``roles``: import_file's role options. Raises ImportFailed."""
    return _with_progress(path, lambda progress: import_file(
        path, dataset, label_column=label_column, id_column=id_column, exclude=exclude, labels=labels,
        progress=progress, **(roles or {})))


def _run_image_import(path, dataset, labels, positive_labels=None):
    """import_images with a progress bar as _run_import; returns the ImportResult. Raises ImportFailed."""
    return _with_progress(path, lambda progress: import_images(path, dataset, labels=labels,
                                                               positive_labels=positive_labels, progress=progress))


def _with_progress(path, importer):
    """``importer(progress)`` in a store connection, with a progress bar when stderr is a terminal."""
    def run(progress=None):
        with database.connection_context():
            return importer(progress)

    if not sys.stderr.isatty():
        return run()
    with click.progressbar(length=1000, label=f"Importing {os.path.basename(path)}", file=sys.stderr) as bar:
        return run(lambda done, total: bar.update(int(1000 * done / max(total, 1)) - bar.pos))


def _store_hint(config):
    """What other commands need to reach the store of ``config`` (the demo's): the --instance option, or the
    LABELER_* variables to export (the secret key aside), one per line."""
    exports = "\n".join(f"export {variable}={shlex.quote(value)}" for variable, value in config.environment().items()
                        if variable != "LABELER_SECRET_KEY")
    return (f"Other commands use this store with --instance, e.g. python manage.py --instance "
            f"{shlex.quote(config.INSTANCE_PATH)} create-user NAME --role analyst; or, in this shell:\n{exports}")


def _prepare_to_serve(app):
    """Compile every template of ``app``, so that the first analyst's request does not wait for Jinja to compile
    the labeling screen (a few hundred ms on a busy machine); keep numpy's BLAS to one thread (the server's
    threads are its parallelism: on a busy 2-core machine a 2-thread product of 100,000 labeled vectors for the
    similar items took 4-8 ms, one thread 0.6 ms); then move the objects made so far (modules, the app, the
    templates: about 100,000) out of the garbage collector's sight, so that its full collections stop walking
    them (each walk paused every thread of the server for 50-60 ms)."""
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)
    threadpool_limits(limits=1)
    gc.collect()
    gc.freeze()


def _serve(app, host, port, threads, processes=1):
    """Serve ``app`` until Ctrl-C: with waitress in this process, or with ``processes`` > 1 under gunicorn, each
    worker process building its own app on ``app``'s configuration. Exits with one line without gunicorn."""
    where = f"http://{host}:{port}/"
    if processes == 1:
        _prepare_to_serve(app)
        click.echo(f"Serving labeler on {where} (Ctrl-C to stop)")
        serve(app, host=host, port=port, threads=threads, ident="labeler")
        return
    try:
        from labeler.cli.processes import ProcessServer
    except ImportError as error:
        fail(f"--processes needs gunicorn: pip install -e '.[deploy]' ({error})")
    click.echo(f"Serving labeler on {where} with gunicorn: {processes} processes of {threads} threads (Ctrl-C to stop)")
    settings = app.extensions["labeler.config"].as_dict()
    ProcessServer(settings, host, port, processes, threads, _prepare_to_serve).run()


@click.command("init-db")
@with_appcontext
@stops_on_full_disk
def init_db_command():
    """Create the label store's tables, or upgrade an existing store in place."""
    with database.connection_context():
        applied = upgrade()
    where = configuration().DATABASE
    if applied:
        click.echo(f"Store at {where}: applied schema version(s) {', '.join(map(str, applied))}.")
    else:
        click.echo(f"Store at {where} is up to date.")


@click.command("import")
@click.argument("path")
@click.option("--dataset", required=True, help="Name of the dataset to create or append to.")
@click.option("--label-column", default=None, help="Column holding ground truth (kept apart, never shown).")
@click.option("--id-column", default=None, help="Column holding transaction ids (default: row numbers).")
@click.option("--exclude", multiple=True, help="Numeric column to keep for display only, not as a feature. Repeatable.")
@click.option("--ignore", multiple=True,
              help="Column not to import at all (neither shown nor a feature), e.g. a second ground-truth column. "
                   "Repeatable.")
@click.option("--labels", default=None,
              help="Comma-separated label set of a new dataset (default: genuine,fraud, or the label column's "
                   "values; a column of codes 0..K-1 takes the K names in order).")
@click.option("--positive-labels", default=None,
              help="Comma-separated labels of a new dataset that count as fraud (default: fraud; else every label "
                   "but one named genuine/legit/normal; else the second of two labels; else none). Empty: none.")
@click.option("--time-column", default=None,
              help="Column holding each transaction's time (ISO 8601 or epoch seconds): time-of-day features, and "
                   "with --entity-column the history features.")
@click.option("--entity-column", "entity_columns", multiple=True,
              help="Column of an entity whose history matters: the card first, then e.g. the merchant. Repeatable. "
                   "Never a feature itself; needs --time-column.")
@click.option("--categorical", multiple=True,
              help="Text column to one-hot encode as a feature (default: text columns with at most 50 distinct "
                   "values). Repeatable.")
@click.option("--amount-column", default=None,
              help="Column of amounts for the history features (default: a numeric column named amount or amt).")
@with_appcontext
@stops_on_full_disk
def import_command(path, dataset, label_column, id_column, exclude, ignore, labels, positive_labels, time_column,
                   entity_columns, categorical, amount_column):
    """Import transactions from PATH (CSV, CSV.gz or Parquet) or images (PATH an NPZ file of X and optionally y,
    or a folder of PNG files, one sub-folder per label) into a dataset, all or nothing. Column roles (time,
    entities, categorical, amount) are chosen at a dataset's first import and kept for its appends."""
    names = [name.strip() for name in labels.split(",")] if labels else None
    positives = None if positive_labels is None else [name.strip() for name in positive_labels.split(",")
                                                      if name.strip()]
    roles = {"time_column": time_column, "entity_columns": entity_columns, "categorical": categorical,
             "amount_column": amount_column, "ignore": ignore, "positive_labels": positives}
    images = is_image_source(path)
    if images:
        given = {"--label-column": label_column, "--id-column": id_column, "--exclude": exclude, "--ignore": ignore,
                 "--time-column": time_column, "--entity-column": entity_columns, "--categorical": categorical,
                 "--amount-column": amount_column}
        for option, value in given.items():
            if value:
                fail(f"{option} applies to CSV and Parquet files, not to images ({path}): only --dataset, "
                     f"--labels and --positive-labels do (nothing was imported)")
    try:
        if images:
            result = _run_image_import(path, dataset, names, positives)
        else:
            result = _run_import(path, dataset, label_column, id_column, exclude, names, roles)
    except ImportFailed as error:
        fail(f"{error} (nothing was imported)")
    verb = "created" if result.created else "updated"
    click.echo(
        f"Dataset {dataset!r} {verb}: {result.rows_read:,} rows read, {result.rows_added:,} added, "
        f"{result.rows_skipped:,} already present."
    )
    for note in result.notes:
        click.echo(note)
    if result.rows_added:
        with database.connection_context():
            refill, _ = jobs.request(result.dataset, jobs.REFILL, "after an import")
            autoencoder, _ = jobs.request(result.dataset, jobs.AUTOENCODER, "after an import")
            queued = (f"Jobs queued for the worker: queue refill {refill.id} (queue and feature statistics), "
                      f"autoencoder {autoencoder.id} (screen bars, latent map, cold-start score)")
            if has_history(result.dataset.roles or {}):
                sequence, _ = jobs.request(result.dataset, jobs.SEQUENCES, "after an import")
                queued += f", sequences {sequence.id} (each card's recent transactions: unusual steps on the screen)"
        click.echo(queued + ".")


@click.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(["analyst", "reviewer", "admin"]), default="analyst", show_default=True,
              help="What the user may do: analysts label, reviewers also settle disagreements, admins also "
                   "import, export and manage.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt.")
@with_appcontext
@stops_on_full_disk
def create_user_command(name, role, password_stdin):
    """Create a user NAME who can log in."""
    password = _read_password(password_stdin)
    try:
        with database.connection_context():
            create_user(name, password, role)
    except UserError as error:
        fail(str(error))
    click.echo(f"User {name!r} created with role {role}.")


def _read_password(password_stdin):
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input instead of a prompt.")
@with_appcontext
@stops_on_full_disk
def set_password_command(name, password_stdin):
    """Give user NAME a new password; every session of NAME is revoked (it logs in again)."""
    password = _read_password(password_stdin)
    try:
        with database.connection_context():
            set_password(name, password)
    except UserError as error:
        fail(str(error))
    click.echo(f"Password of user {name.strip()!r} changed; its sessions were revoked.")


@click.command("disable-user")
@click.argument("name")
@with_appcontext
@stops_on_full_disk
def disable_user_command(name):
    """Disable user NAME: it can no longer log in, and its sessions stop working at once."""
    try:
        with database.connection_context():
            set_disabled(name, True)
    except UserError as error:
        fail(str(error))
    click.echo(f"User {name.strip()!r} disabled; its sessions were revoked.")


@click.command("enable-user")
@click.argument("name")
@with_appcontext
@stops_on_full_disk
def enable_user_command(name):
    """Enable user NAME again after disable-user (it logs in anew; its old sessions stay revoked)."""
    try:
        with database.connection_context():
            set_disabled(name, False)
    except UserError as error:
        fail(str(error))
    click.echo(f"User {name.strip()!r} enabled.")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, help="Port to listen on.")
@click.option("--threads", default=SERVE_THREADS, show_default=True,
              help="Worker threads of the HTTP server (of each process). Python runs one at a time, so more threads "
                   "make each request slower under load; more help only when some requests wait on I/O.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server processes: more than 1 serves with gunicorn (pip install -e '.[deploy]'), each process "
                   "with --threads threads and store connections of its own; 1 serves with waitress.")
@with_appcontext
def serve_command(host, port, threads, processes):
    """Serve the web app (waitress; gunicorn with --processes). Needs LABELER_SECRET_KEY, at least 32
    characters."""
    secret = configuration().SECRET_KEY
    example = "export LABELER_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"
    if not secret:
        fail(f"LABELER_SECRET_KEY is not set; set it to a long random string, e.g. {example}")
    if len(secret) < MIN_SECRET_KEY_LENGTH:
        fail(f"LABELER_SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters, too easy to guess; "
             f"set it to a long random string, e.g. {example}")
    _serve(current_app._get_current_object(), host, port, threads, processes)


@click.command("export")
@click.option("--dataset", required=True, help="Dataset to export.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="Output format.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="File to write.")
@click.option("--include-pseudo", is_flag=True, help="Also export pseudo and model labels (marked by source).")
@with_appcontext
@stops_on_full_disk
def export_command(dataset, fmt, out, include_pseudo):
    """Write the labeled items: original columns, the label that stands and how it was reached (JSONL: every
    decision too); disputed items are written without a label. The export is recorded in the audit log."""
    try:
        with database.connection_context():
            count = exporter.export(dataset_named(dataset), out, fmt, include_pseudo)
    except OSError as error:
        fail(f"cannot write {out}: {error.strerror or error}")
    click.echo(f"Exported {count:,} labeled items to {out}; {exporter.RULE}.")


@click.command("stats")
@click.option("--dataset", required=True, help="Dataset to describe.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@with_appcontext
def stats_command(dataset, as_json):
    """Print a dataset's rows, features and label counts."""
    with database.connection_context():
        figures = datasets_service.stats(dataset_named(dataset))
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(f"Dataset {figures['dataset']}: {figures['rows']:,} rows, {figures['features']} features")
    click.echo(f"Label set: {', '.join(figures['labels'])}; counted as fraud: "
               f"{', '.join(figures['positive_labels']) or 'none'}")
    roles = describe_roles(figures["roles"])
    if roles:
        click.echo(roles)
    click.echo(f"Human labels: {figures['human_labeled']:,} {figures['human_labels']}")
    click.echo(f"Pseudo labels: {sum(figures['pseudo_labels'].values()):,}")
    if figures["ground_truth"]:
        click.echo(f"Ground truth (evaluation only): {figures['ground_truth']}")


@click.command("demo")
@click.option("--port", default=5000, show_default=True, help="Port to serve on (127.0.0.1).")
@click.option("--dir", "directory", default=None, type=click.Path(file_okay=False),
              help="Folder for the demo store (default: a new temporary folder).")
def demo_command(port, directory):
    """Fresh store with the bundled samples (credit-card and simulated raw transactions, the digits images), a
    demo login printed, then the server and a worker (which runs the autoencoder jobs first), each in its own
    process with the demo's settings (Ctrl-C stops both)."""
    directory = os.path.abspath(directory or tempfile.mkdtemp(prefix="labeler-demo-"))
    os.makedirs(directory, exist_ok=True)
    store = os.path.join(directory, "labeler.sqlite3")
    if os.path.exists(store):
        fail(f"{store} already exists; give --dir a new folder")
    # The server and the worker share the store, the task queue and the model folder through this configuration.
    config = Config.load({"INSTANCE_PATH": directory, "DATABASE": store, "SECRET_KEY": secrets.token_hex(32),
                          "TASK_QUEUE": os.path.join(directory, "queue.sqlite3"),
                          "MODEL_FOLDER": os.path.join(directory, "models")})
    env = {**os.environ, **config.environment()}
    create_app(config.as_dict())
    click.echo(f"Demo store: {store}")
    try:
        result = _run_import(SAMPLE_PATH, DEMO_DATASET, "Class", None, ("Time",), None)
    except ImportFailed as error:
        fail(str(error))
    click.echo(f"Imported {result.rows_added:,} transactions into dataset {DEMO_DATASET!r}.")
    try:
        raw = _run_import(TRANSACTIONS_PATH, TRANSACTIONS_DATASET, "is_fraud", "transaction_id", (), None,
                          TRANSACTION_ROLES)
        digits = _run_image_import(DIGITS_PATH, DIGITS_DATASET, None)
    except ImportFailed as error:
        fail(str(error))
    click.echo(f"Imported {raw.rows_added:,} simulated raw transactions (card and merchant ids, times, categories) "
               f"into dataset {TRANSACTIONS_DATASET!r}.")
    click.echo(f"Imported {digits.rows_added:,} handwritten digits (8×8 images, 10 labels) into dataset "
               f"{DIGITS_DATASET!r}.")
    password = secrets.token_urlsafe(9)
    with database.connection_context():
        for imported in (result, raw, digits):
            refill, _ = jobs.request(imported.dataset, jobs.REFILL, "demo", enqueue=False)
            # here, so that the first page has its queue before the server starts
            if jobs.run(refill.id, config) != "done":
                fail(f"the cold-start queue could not be computed: {jobs.latest(imported.dataset, jobs.REFILL).error}")
            # a waiting job: the worker hands every waiting job to its queue when it starts (one runner, no race)
            jobs.request(imported.dataset, jobs.AUTOENCODER, "demo", enqueue=False)
            if has_history(imported.dataset.roles or {}):
                jobs.request(imported.dataset, jobs.SEQUENCES, "demo", enqueue=False)
        create_user("demo", password, "admin")
        queued = jobs.latest(result.dataset, jobs.REFILL).payload.get("queued", 0)
    click.echo(f"Cold-start queue of {queued} items scored; the worker runs the autoencoder and sequence jobs now "
               f"and retrains as labels arrive.")
    click.echo(_store_hint(config))
    manage = [sys.executable, os.path.join(ROOT, "manage.py")]
    children = [subprocess.Popen(manage + ["worker"], env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}),
                subprocess.Popen(manage + ["serve", "--port", str(port)], env=env)]
    click.echo(f"Log in at http://127.0.0.1:{port}/ as user: demo  password: {password}")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        children[-1].wait()
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            child.wait(timeout=30)


def _user(name):
    """The user called ``name``; exits with one line when there is none."""
    user = User.get_or_none(User.name == (name or "").strip())
    if user is None:
        fail(f"no user {(name or '').strip()!r}")
    return user


@click.command("create-token")
@click.argument("name")
@click.option("--user", "user_name", required=True, help="The user the token acts as.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(tokens_service.SCOPES), default=("read",),
              show_default=True,
              help="What the token may do: read (datasets, labels, items, jobs), write (push transactions), admin "
                   "(everything; admins only). Repeatable.")
@with_appcontext
@stops_on_full_disk
def create_token_command(name, user_name, scopes):
    """Create an API token NAME (what it is for) for a user and print it once on stdout: only its hash is kept,
    so copy it now. Recorded in the audit log."""
    try:
        with database.connection_context():
            token, clear = tokens_service.create_token(_user(user_name), name, scopes)
    except tokens_service.TokenError as error:
        fail(str(error))
    click.echo(f"Token {token.id} {token.name!r} for user {user_name.strip()!r} (scopes {', '.join(token.scopes)}); "
               f"shown only now, the store keeps its hash:", err=True)
    click.echo(clear)


@click.command("revoke-token")
@click.argument("token")
@click.option("--user", "user_name", default=None, help="Only a token of this user (default: any user's).")
@with_appcontext
@stops_on_full_disk
def revoke_token_command(token, user_name):
    """Revoke the API token TOKEN (its id or its prefix, as `tokens` lists them): it stops working at once.
    Recorded in the audit log."""
    try:
        with database.connection_context():
            revoked = tokens_service.revoke_token(token, _user(user_name) if user_name else None)
    except tokens_service.TokenError as error:
        fail(str(error))
    click.echo(f"Token {revoked.id} {revoked.prefix}... ({revoked.name!r}) revoked.")


@click.command("tokens")
@click.option("--user", "user_name", required=True, help="The user whose tokens to list.")
@with_appcontext
def tokens_command(user_name):
    """List a user's API tokens, newest first: id, prefix, name, scopes, created, last used, revoked."""
    with database.connection_context():
        found = tokens_service.tokens_of(_user(user_name))
    if not found:
        click.echo(f"User {user_name.strip()!r} has no API tokens.")
    for token in found:
        last = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
        click.echo(f"{token.id}\t{token.prefix}...\t{token.name}\t{','.join(token.scopes)}\t"
                   f"created {token.created_at:%Y-%m-%d %H:%M}\tlast used {last}\t{state}")


COMMANDS = [init_db_command, import_command, create_user_command, set_password_command, disable_user_command,
            enable_user_command, serve_command, export_command,
            stats_command, demo_command, create_token_command, revoke_token_command, tokens_command]
