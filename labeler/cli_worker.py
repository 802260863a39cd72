"""Commands for background retraining: the worker and the periodic retrain for cron."""
import os
import sys
import time

import click
from flask.cli import with_appcontext

from labeler import datasets as datasets_service
from labeler import retraining
from labeler.db import Job, database

WAIT_POLL_SECONDS = 1.0


@click.command("worker")
@click.option("--workers", default=1, show_default=True, help="Worker threads; retrains of one dataset never overlap.")
@click.option("--nice", "niceness", default=10, show_default=True, type=click.IntRange(0, 19),
              help="Lower the worker's CPU priority by this much, so the web server's requests go first on busy "
                   "cores (0: as the shell started it).")
@with_appcontext
def worker_command(workers, niceness):
    """Run the background worker that retrains models and rescores the pool (Ctrl-C stops it)."""
    from labeler import generative
    from labeler.tasks import enqueue_generative, enqueue_retrain, huey

    if niceness:
        os.nice(niceness)
    with database.connection_context():
        recovered = retraining.recover_interrupted(enqueue_retrain)
        recovered_autoencoder = generative.recover_interrupted(enqueue_generative)
    if recovered:
        click.echo(f"{recovered} interrupted retrain(s) marked failed and queued again.")
    if recovered_autoencoder:
        click.echo(f"{recovered_autoencoder} interrupted autoencoder job(s) marked failed and queued again.")
    click.echo("Worker started; waiting for retrain jobs.")
    huey.create_consumer(workers=workers, periodic=False).run()


@click.command("retrain")
@click.option("--dataset", required=True, help="Dataset to retrain.")
@click.option("--wait", is_flag=True, help="Wait for the worker to finish the retrain and print its result.")
@click.option("--timeout", default=3600, show_default=True, help="Seconds to wait with --wait.")
@with_appcontext
def retrain_command(dataset, wait, timeout):
    """Queue a retrain of a dataset for the worker (for cron); does nothing when no label is new."""
    from labeler.tasks import enqueue_retrain

    try:
        with database.connection_context():
            job, created = retraining.request_retrain(datasets_service.get_dataset(dataset), "retrain command",
                                                      enqueue_retrain)
    except datasets_service.DatasetNotFound as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    click.echo(f"Retrain job {job.id} {'queued' if created else 'was already waiting'} for {dataset!r}.")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with database.connection_context():
            job = Job.get_by_id(job.id)
        line = f"{job.state}: {job.stage or ''} {job.percent:.0f}%"
        if line != last:
            click.echo(line)
            last = line
        if job.state in ("done", "failed"):
            if job.state == "failed":
                click.echo(f"Error: retrain failed: {job.error}", err=True)
                sys.exit(1)
            return
        time.sleep(WAIT_POLL_SECONDS)
    click.echo(f"Error: job {job.id} did not finish within {timeout} s; is `python manage.py worker` running?",
               err=True)
    sys.exit(1)


COMMANDS = [worker_command, retrain_command]
