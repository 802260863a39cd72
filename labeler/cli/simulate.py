"""The ``simulate`` command: replay labeling with the ground truth as the oracle, in memory."""
import click
from flask.cli import with_appcontext

from labeler.cli.common import dataset_named, fail, stops_on_full_disk
from labeler.store.db import database
from labeler.store.settings import SettingsError, engine_settings
from labeler.worker import simulate
from labeler.worker.refill import categorical_blocks


@click.command("simulate")
@click.option("--dataset", required=True, help="Dataset to simulate on; it needs ground truth (--label-column).")
@click.option("--budget", required=True, type=click.IntRange(min=1), help="Labels to spend per run.")
@click.option("--batch", default=10, show_default=True, type=click.IntRange(min=1),
              help="Labels per batch; a model is trained and scored after each.")
@click.option("--strategy", type=click.Choice(simulate.STRATEGIES), default=simulate.DEFAULT, show_default=True,
              help="default: the product's loop; random and uncertainty are the baselines.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1),
              help="Runs with seeds 0..K-1 (each its own 80/20 split); the curve is their mean.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder for results.json and curve.png.")
@with_appcontext
@stops_on_full_disk
def simulate_command(dataset, budget, batch, strategy, seeds, out):
    """Simulate labeling with the dataset's ground truth as the oracle; random and uncertainty run beside.

    Nothing is written to the store.
    """
    try:
        with database.connection_context():
            chosen = dataset_named(dataset)
            X, y, groups = simulate.load_truth(chosen)
            categorical = categorical_blocks(chosen)
            settings = engine_settings(chosen)
    except (simulate.SimulationError, SettingsError) as error:
        fail(str(error))
    click.echo(f"Simulating {strategy} on {dataset!r}: {len(y):,} items, {int(y.sum()):,} positives; "
               f"budget {budget}, batch {batch}, seeds 0..{seeds - 1}.")
    if settings["generative_candidates"] and strategy == simulate.DEFAULT:
        click.echo(f"Generative candidates in model selection: {', '.join(settings['generative_candidates'])} "
                   "(Keras trains in this process).")

    def progress(name, seed, labels):
        if labels // 100 != (labels - batch) // 100:
            click.echo(f"  {name} seed {seed}: {labels} labels", err=True)

    results = simulate.simulate(X, y, dataset, strategy, budget, batch, list(range(seeds)), settings, progress,
                                groups=groups, categorical=categorical)
    try:
        json_path, png_path = simulate.write_outputs(results, out)
    except OSError as error:
        fail(f"cannot write to {out}: {error}")
    last = results["curve"][-1]
    click.echo(f"{strategy}: AUPRC {last['auprc']:.3f}, positives found {last['positives_found']:g} "
               f"after {last['labels']} labels.")
    for name, curve in results["baselines"].items():
        click.echo(f"{name}: AUPRC {curve[-1]['auprc']:.3f}, positives found {curve[-1]['positives_found']:g}.")
    click.echo(f"Wrote {json_path} and {png_path}.")


COMMANDS = [simulate_command]
