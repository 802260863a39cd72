"""The worker and the periodic retrain for cron."""
import os
import time

import click
from flask.cli import with_appcontext

from labeler.cli.common import dataset_named, fail, stops_on_full_disk
from labeler.store.db import Job, database
from labeler.worker import jobs
from labeler.worker.jobs import task_queue

WAIT_POLL_SECONDS = 1.0


@click.command("worker")
@click.option("--workers", default=1, show_default=True,
              help="Worker threads: jobs run side by side, at most one waiting per dataset and kind.")
@click.option("--nice", "niceness", default=10, show_default=True, type=click.IntRange(0, 19),
              help="Lower the worker's CPU priority by this much, so the web server's requests go first on busy "
                   "cores (0: as the shell started it).")
@with_appcontext
def worker_command(workers, niceness):
    """Run the background worker: the one process that computes (retrains, queue refills, the autoencoder job);
    Ctrl-C stops it."""
    if niceness:
        os.nice(niceness)
    try:  # load the model code now: a missing install fails here, not in the first job
        for kind in jobs.HANDLERS:
            jobs.handler_of(kind)
    except ImportError as error:
        fail(f"the worker needs the machine-learning libraries: pip install -e '.[worker]' ({error})")
    with database.connection_context():
        interrupted = jobs.recover_interrupted()
    for kind, count in sorted(interrupted.items()):
        click.echo(f"{count} interrupted {kind} job(s) marked failed and queued again.")
    click.echo("Worker started; waiting for jobs.")
    task_queue.consumer(workers).run()


@click.command("retrain")
@click.option("--dataset", required=True, help="Dataset to retrain.")
@click.option("--wait", is_flag=True, help="Wait for the worker to finish the retrain and print its result.")
@click.option("--timeout", default=3600, show_default=True, help="Seconds to wait with --wait.")
@with_appcontext
@stops_on_full_disk
def retrain_command(dataset, wait, timeout):
    """Queue a retrain of a dataset for the worker (for cron); does nothing when no label is new."""
    with database.connection_context():
        job, created = jobs.request(dataset_named(dataset), jobs.RETRAIN, "retrain command")
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
                fail(f"retrain failed: {job.error}")
            return
        time.sleep(WAIT_POLL_SECONDS)
    fail(f"job {job.id} did not finish within {timeout} s; is `python manage.py worker` running?")


COMMANDS = [worker_command, retrain_command]
