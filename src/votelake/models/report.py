"""Model evaluation report: PNG plots plus one self-contained HTML page.

Pure pandas + matplotlib's object API (a ``Figure`` saved to PNG needs no
backend and no display, and leaves the process's backend, a notebook's
included, as it was), so it runs on a driver or a CI box without Spark. The caller computes every number (curves, bins,
deciles, group summaries); this module only draws and lays them out.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

DPI = 110
TOP_FEATURES = 25
_COLUMNS = {
    "roc": ("curve", "fpr", "tpr"),
    "reliability": ("curve", "bin", "mean_p", "mean_y", "n"),
    "deciles": ("decile", "n", "positives", "rate", "lift", "cum_capture"),
    "importance": ("feature", "value"),
    "fairness": ("attribute", "group", "n", "mean_score", "mean_label", "ece"),
    "qini": ("curve", "fraction", "gain"),
}
_REFERENCE = {"linestyle": ":", "color": "grey", "linewidth": 1}
# Reliability bins with fewer voters are marked, not joined into the curve.
MIN_BIN_VOTERS = 30


@dataclass(frozen=True)
class ReportData:
    """Everything one evaluation report shows; frames follow the column lists in ``_COLUMNS``."""

    title: str
    metrics: dict[str, float]
    params: dict[str, str]
    roc: pd.DataFrame
    reliability: pd.DataFrame
    deciles: pd.DataFrame
    importance: pd.DataFrame
    fairness: pd.DataFrame
    qini: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()


def write_report(data: ReportData, out_dir: Path) -> dict[str, Path]:
    """Render the plots and ``report.html`` into ``out_dir``.

    Args:
        data: the numbers to show.
        out_dir: target folder, created if missing; existing files of the same name are replaced.

    Returns:
        File name -> path of every file written, ``report.html`` included.
        ``importance.png``, ``fairness.png`` and ``qini.png`` are left out when
        their frame is empty (or ``qini`` is None).

    Raises:
        ValueError: a frame lacks one of its required columns.
    """
    for name, columns in _COLUMNS.items():
        frame = getattr(data, name)
        missing = [] if frame is None else [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"ReportData.{name} lacks column(s): {', '.join(missing)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Callable[[Figure, ReportData], None]] = {
        "roc.png": _roc, "calibration.png": _calibration, "lift.png": _deciles,
    }
    if not data.importance.dropna(subset=["value"]).empty:
        plots["importance.png"] = _importance
    if not data.fairness.empty:
        plots["fairness.png"] = _fairness
    if data.qini is not None and not data.qini.empty:
        plots["qini.png"] = _qini
    written: dict[str, Path] = {}
    for file_name, draw in plots.items():
        # Not pyplot's: a Figure of its own is freed with its last reference, and needs no backend.
        fig = Figure()
        draw(fig, data)
        fig.savefig(out_dir / file_name, dpi=DPI, bbox_inches="tight")
        written[file_name] = out_dir / file_name
    page = out_dir / "report.html"
    page.write_text(_html(data, set(written)), encoding="utf-8")
    written["report.html"] = page
    return written


def _t(text: object) -> str:
    # A label like "a$x$" would otherwise be parsed as mathtext and may fail to draw.
    return str(text).replace("$", r"\$")


def _curves(ax, frame: pd.DataFrame, x: str, y: str, **style) -> None:
    dashes = {"baseline": "--", "random": "--", "oracle": "-."}
    for curve, part in frame.groupby("curve", sort=False):
        part = part.sort_values([x, y])
        ax.plot(part[x], part[y], label=_t(curve), linestyle=dashes.get(str(curve), "-"), **style)


def _roc(fig: Figure, data: ReportData) -> None:
    fig.set_size_inches(5.5, 5)
    ax = fig.subplots()
    _curves(ax, data.roc, "fpr", "tpr")
    ax.plot([0, 1], [0, 1], label="chance", **_REFERENCE)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.set_aspect("equal")
    ax.legend(loc="lower right")


def _calibration(fig: Figure, data: ReportData) -> None:
    fig.set_size_inches(5.5, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.plot([0, 1], [0, 1], label="perfect", **_REFERENCE)
    sparse_shown = False
    for curve, part in data.reliability.groupby("curve", sort=False):
        part = part.sort_values("mean_p")
        # A bin of a few voters says little about calibration: drawn hollow, off the curve.
        dense, sparse = part[part["n"] >= MIN_BIN_VOTERS], part[part["n"] < MIN_BIN_VOTERS]
        line, = top.plot(dense["mean_p"], dense["mean_y"], marker="o", markersize=4, label=_t(curve))
        if len(sparse):
            top.scatter(sparse["mean_p"], sparse["mean_y"], s=16, facecolors="none", edgecolors=line.get_color(),
                        label=None if sparse_shown else f"bins of fewer than {MIN_BIN_VOTERS} voters")
            sparse_shown = True
        bottom.plot(part["mean_p"], part["n"], marker="o", markersize=3, label=_t(curve))
    counts = data.reliability["n"][data.reliability["n"] > 0]
    # Calibrated scores pile up in a few bins; a log axis keeps the sparse ones visible.
    if len(counts) and counts.max() / counts.min() > 100:
        bottom.set_yscale("log")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed rate", title="Reliability")
    top.legend(loc="upper left")
    bottom.set(xlabel="mean predicted probability", ylabel="voters per bin")


def _deciles(fig: Figure, data: ReportData) -> None:
    frame = data.deciles.sort_values("decile")
    fig.set_size_inches(7, 4.5)
    ax = fig.subplots()
    ax.bar(frame["decile"], frame["lift"], color="#4c78a8", label="lift")
    ax.axhline(1.0, label="no lift", **_REFERENCE)
    ax.set(xlabel="score decile (1 = highest scores)", ylabel="lift", title="Lift and cumulative capture")
    ax.set_xticks(frame["decile"])
    capture = ax.twinx()
    capture.plot(frame["decile"], frame["cum_capture"], color="#e45756", marker="o", label="cumulative capture")
    capture.set(ylim=(0, 1.05), ylabel="share of positives captured")
    capture.yaxis.set_major_formatter(PercentFormatter(1.0))
    handles = ax.get_legend_handles_labels()[0] + capture.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="center right")


def _importance(fig: Figure, data: ReportData) -> None:
    frame = data.importance.dropna(subset=["value"]).reset_index(drop=True)
    top = frame["value"].abs().sort_values(ascending=False, kind="stable").index[:TOP_FEATURES]
    frame = frame.loc[top][::-1]  # barh draws bottom-up; largest goes on top
    fig.set_size_inches(7, 1.2 + 0.28 * len(frame))
    ax = fig.subplots()
    colors = ["#4c78a8" if v >= 0 else "#e45756" for v in frame["value"]]
    # numeric positions: categorical string axes would merge duplicate names
    ax.barh(range(len(frame)), frame["value"], color=colors)
    ax.set_yticks(range(len(frame)), [_t(f) for f in frame["feature"]])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="importance / coefficient", title=f"Top {len(frame)} features by |value|")


def _fairness(fig: Figure, data: ReportData) -> None:
    groups = list(data.fairness.groupby("attribute", sort=False))
    cols = min(3, len(groups))
    rows = -(-len(groups) // cols)
    fig.set_size_inches(4.2 * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (attribute, part) in zip(axes.flat, groups):
        x = range(len(part))
        ax.bar([i - 0.2 for i in x], part["mean_score"], width=0.4, label="mean score", color="#4c78a8")
        ax.bar([i + 0.2 for i in x], part["mean_label"], width=0.4, label="mean label", color="#f58518")
        labels = [_t(g) for g in part["group"]]
        tilt = 30 if len(part) > 4 or max(map(len, labels)) > 8 else 0
        ax.set_xticks(list(x), labels, rotation=tilt, ha="right" if tilt else "center")
        ax.set(title=_t(attribute), ylim=(0, 1))
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="upper right", fontsize="small")
    fig.suptitle("Score vs outcome by group")
    fig.tight_layout()


def _qini(fig: Figure, data: ReportData) -> None:
    fig.set_size_inches(6, 4.5)
    ax = fig.subplots()
    _curves(ax, data.qini, "fraction", "gain")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlim=(0, 1), xlabel="fraction of voters targeted", ylabel="incremental gain", title="Qini")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(loc="upper left")


def _num(value: object) -> str:
    if isinstance(value, float):
        # Whole numbers this large are counts; small ones (auc 1.0) stay rates.
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 10 else f"{value:.4f}"
    return str(value)


def _table(frame: pd.DataFrame) -> str:
    frame = frame.copy()
    for column in frame.select_dtypes("float").columns:
        values = frame[column].dropna()
        if len(values) and (values % 1 == 0).all():  # counts that went through a float
            frame[column] = frame[column].astype("Int64")
    return frame.to_html(index=False, border=0, na_rep="–", float_format="{:.4f}".format, escape=True)


def _pairs(items: dict, header: tuple[str, str]) -> str:
    if not items:
        return "<p class='na'>None recorded.</p>"
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_num(v))}</td></tr>" for k, v in items.items())
    # Fixed columns that wrap: a parameter's value (a list of features) stays on the page.
    return (f"<table class='pairs'><thead><tr><th>{header[0]}</th><th>{header[1]}</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right;overflow-wrap:anywhere}
table.pairs{table-layout:fixed;width:100%}table.pairs td:first-child{width:35%}table.pairs td{text-align:left}
th:first-child,td:first-child{text-align:left}thead th{background:#f4f4f4}
img{max-width:100%;height:auto}.na{color:#888;font-style:italic}
"""


def _html(data: ReportData, images: set[str]) -> str:
    e = html.escape
    metrics = {k: float(v) for k, v in data.metrics.items()}
    sections = [
        ("roc.png", "ROC curve", None),
        ("calibration.png", "Calibration", None),
        ("lift.png", "Lift by decile", data.deciles.sort_values("decile")),
        ("importance.png", "Feature importance", None),
        ("fairness.png", "Fairness by group", data.fairness),
        ("qini.png", "Qini curve", None),
    ]
    body = [
        f"<h1>{e(data.title)}</h1>",
        "<h2>Headline metrics</h2>", _pairs(metrics, ("metric", "value")),
        "<h2>Parameters</h2>", _pairs(data.params, ("parameter", "value")),
    ]
    for image, heading, table in sections:
        body.append(f"<h2>{e(heading)}</h2>")
        if image not in images:
            body.append(f"<p class='na'>{e(heading)} not available.</p>")
            continue
        body.append(f'<img src="{e(image)}" alt="{e(heading)}">')
        if table is not None and not table.empty:
            body.append(_table(table))
    if data.notes:
        body.append("<h2>Notes</h2>")
        body.extend(f"<p>{e(note)}</p>" for note in data.notes)
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{e(data.title)}</title>"
        f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
