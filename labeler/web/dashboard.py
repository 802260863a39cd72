"""A dataset's dashboard: per analyst and for the team, labels, labels per active hour, frauds found, accept rate,
seconds on screen, agreement and reviews over a window, with the labels per bucket drawn as SVG geometry (bars
for the team, a line per analyst, a line of the frauds marked). One URL serves the page and, to htmx, its
partial."""
import math

from flask import Blueprint, make_response, render_template, request
from flask_login import current_user, login_required

from labeler.data import dashboards
from labeler.web.access import dataset_or_404

bp = Blueprint("dashboard", __name__)

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 12, 40  # room for the y tick labels and the x tick labels
X_LABELS = 10  # at most this many x tick labels
Y_TICKS = 5  # about this many y ticks above 0
MARKERS_UP_TO = 62  # buckets: with more, lines carry no point markers
LINE_COLOURS = ("#0b5fff", "#2e7d32", "#8e24aa", "#ef6c00", "#00838f", "#6d4c41", "#c2185b", "#827717")


@bp.route("/datasets/<name>/dashboard")
@login_required
def show(name):
    """The dashboard of dataset ``name`` over the ``window`` GET parameter (24h, 7d, 30d, all; 7d by default):
    the whole page, or to htmx the part below the heading. 404 for an unknown dataset, 400 for a bad window."""
    dataset = dataset_or_404(name)
    window = request.args.get("window", dashboards.DEFAULT_WINDOW)
    try:
        report = dashboards.dashboard(dataset, current_user, window)
    except dashboards.UnknownWindow as bad:
        return render_template("error.html", message=str(bad)), 400
    # htmx restoring its history after a cache miss wants the whole page
    partial = request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request")
    response = make_response(render_template("_dashboard.html" if partial else "dashboard.html", dataset=dataset,
                                             report=report, chart=chart(report), windows=dashboards.WINDOWS))
    response.vary.add("HX-Request")
    return response


def chart(report):
    """The chart's geometry in SVG units: width, height, the plot's edges (left, right, top, bottom), y ticks
    as (y, value), x labels as (x, text), ``bars`` (the team's labels per bucket: x, y, width, height, bucket
    text, count), ``lines`` (one per row shown: name, colour, points as (x, y, bucket text, count), the
    polyline's points attribute) and ``frauds`` (the same for the frauds marked), ``markers`` (whether lines
    carry point markers), ``peak`` (the highest bucket's labels)."""
    buckets = report["buckets"]
    hourly = report["unit"] == "hour"
    texts = [bucket.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d") for bucket in buckets]
    team = report["team"]
    peak = max(team["series"] + team["frauds_series"] + [0])
    step = _nice_step(max(peak, 1) / Y_TICKS)
    top_value = step * math.ceil(max(peak, 1) / step)
    bottom = HEIGHT - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / len(buckets)

    def x_of(index):
        return round(LEFT + (index + 0.5) * slot, 1)

    def y_of(value):
        return round(bottom - (bottom - TOP) * value / top_value, 1)

    def line(series):
        points = [(x_of(index), y_of(value), texts[index], value) for index, value in enumerate(series)]
        return {"points": points, "path": " ".join(f"{x},{y}" for x, y, _, _ in points)}

    bars = [{"x": round(LEFT + index * slot + slot * 0.15, 1), "y": y_of(value), "width": round(slot * 0.7, 1),
             "height": round(bottom - y_of(value), 1), "bucket": texts[index], "count": value}
            for index, value in enumerate(team["series"])]
    lines = [{"name": row["name"], "colour": LINE_COLOURS[index % len(LINE_COLOURS)], **line(row["series"])}
             for index, row in enumerate(report["rows"]) if row["labels"]]
    every = math.ceil(len(buckets) / X_LABELS)
    label_format = "%H:00" if hourly else "%m-%d" if len(buckets) <= 366 else "%Y-%m-%d"
    x_labels = [(x_of(index), bucket.strftime(label_format)) for index, bucket in enumerate(buckets)
                if (len(buckets) - 1 - index) % every == 0]  # the latest bucket always has its label
    y_ticks = [(y_of(value), value) for value in range(0, top_value + 1, step)]
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": bottom,
            "bars": bars, "lines": lines, "frauds": line(team["frauds_series"]), "x_labels": x_labels,
            "y_ticks": y_ticks, "markers": len(buckets) <= MARKERS_UP_TO, "peak": peak}


def _nice_step(rough):
    """The smallest whole step of 1, 2 or 5 times a power of ten that is at least ``rough`` (at least 1)."""
    power = 10 ** max(0, math.floor(math.log10(max(rough, 1))))
    return next(factor * power for factor in (1, 2, 5, 10) if factor * power >= rough)
