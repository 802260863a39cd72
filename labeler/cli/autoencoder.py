"""The ``generative`` command: fit the autoencoder on a dataset's pool and store its outputs, in this process."""
import click
from flask.cli import with_appcontext

from labeler.cli.common import configuration, dataset_named, fail, stops_on_full_disk
from labeler.store.artifacts import PROJECTION_NAMES, artifacts_of
from labeler.store.db import Job, database, write_transaction
from labeler.worker import jobs
from labeler.worker.autoencoder import DEFAULT_PROJECTION, EPOCHS, MIN_STEPS, PROJECTIONS


@click.command("generative")
@click.option("--dataset", required=True, help="Dataset whose pool the autoencoder is fitted on.")
@click.option("--projection", type=click.Choice(PROJECTIONS), default=DEFAULT_PROJECTION, show_default=True,
              help="How the latent map projects the encodings to 2-D.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help=f"Training epochs of the autoencoder (default: {EPOCHS}; for images at least {MIN_STEPS:,} "
                   f"batches).")
@click.option("--seed", default=0, show_default=True, help="Seed of the fit sample, the model and the map.")
@with_appcontext
@stops_on_full_disk
def generative_command(dataset, projection, epochs, seed):
    """Fit the autoencoder on a dataset's pool and store every item's reconstruction and anomaly score and the
    latent map, for the labeling screen, the admin's map and the cold start. Runs here, not in the worker."""
    options = {"projection": projection, "epochs": epochs, "seed": seed}
    with database.connection_context():
        chosen = dataset_named(dataset)
        with write_transaction():  # a job of its own, run here with these options (not a request to the worker)
            job = Job.create(dataset=chosen, kind=jobs.AUTOENCODER, state="queued", stage="queued",
                             payload={"reason": "generative command", "options": options})
    with database.connection_context():
        state = jobs.run(job.id, configuration())
        job = Job.get_by_id(job.id)
        record = artifacts_of(chosen)
    if state != "done":
        fail(f"the autoencoder job {job.id} {state}: {job.error or job.stage}")
    click.echo(f"Autoencoder outputs of {dataset!r} stored: {record.pool_rows:,} items, latent map of "
               f"{record.details.get('map_points', 0):,} points ({PROJECTION_NAMES[record.projection]}), "
               f"{record.seconds:.1f} s on {record.device}.")


COMMANDS = [generative_command]
