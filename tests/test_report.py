"""Evaluation report: PNG plots and a self-contained, escaped HTML page (no Spark)."""

from __future__ import annotations

import dataclasses
import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from votelake.models.report import ReportData, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALWAYS = {"roc.png", "calibration.png", "lift.png", "report.html"}
OPTIONAL = {"importance.png", "fairness.png", "qini.png"}


def _data() -> ReportData:
    """Small made-up numbers shaped like a real evaluation."""
    roc = pd.DataFrame({
        "curve": ["model"] * 5 + ["baseline"] * 5,
        "fpr": [0.0, 0.1, 0.3, 0.6, 1.0] * 2,
        "tpr": [0.0, 0.5, 0.8, 0.95, 1.0, 0.0, 0.3, 0.6, 0.85, 1.0],
    })
    reliability = pd.DataFrame({
        "curve": ["raw"] * 4 + ["calibrated"] * 4,
        "bin": [0, 1, 2, 3] * 2,
        "mean_p": [0.1, 0.35, 0.6, 0.85, 0.12, 0.37, 0.62, 0.88],
        "mean_y": [0.05, 0.3, 0.7, 0.95, 0.11, 0.38, 0.6, 0.9],
        "n": [400, 250, 200, 150, 20, 300, 5000, 120],
    })
    deciles = pd.DataFrame({
        "decile": range(1, 11),
        "n": [100.0] * 10,  # counts often arrive as floats from an aggregation
        "positives": [92, 81, 70, 58, 47, 38, 29, 20, 12, 5],
        "rate": [0.92, 0.81, 0.70, 0.58, 0.47, 0.38, 0.29, 0.20, 0.12, 0.05],
        "lift": [2.0444, 1.8, 1.5556, 1.2889, 1.0444, 0.8444, 0.6444, 0.4444, 0.2667, 0.1111],
        "cum_capture": [0.2044, 0.3844, 0.54, 0.6689, 0.7733, 0.8578, 0.9222, 0.9667, 0.9933, 1.0],
    })
    importance = pd.DataFrame({
        "feature": [f"feature_{i:02d}" for i in range(40)],
        "value": [(-1) ** i * (40 - i) / 40 for i in range(40)],
    })
    fairness = pd.DataFrame({
        "attribute": ["age_band"] * 3 + ["gender"] * 2,
        "group": ["18-29", "30-64", "65+", "F", "M"],
        "n": [120, 540, 340, 510, 490],
        "mean_score": [0.31, 0.52, 0.71, 0.55, 0.53],
        "mean_label": [0.29, 0.55, 0.69, 0.56, 0.51],
        "ece": [0.021, 0.013, 0.017, 0.011, 0.012],
    })
    qini = pd.DataFrame({
        "curve": ["model"] * 3 + ["oracle"] * 3 + ["random"] * 3,
        "fraction": [0.0, 0.5, 1.0] * 3,
        "gain": [0.0, 30.0, 40.0, 0.0, 40.0, 40.0, 0.0, 20.0, 40.0],
    })
    return ReportData(
        title="turnout — gbt — votelake-turnout v3",
        metrics={"auc": 0.87, "log_loss": 0.41, "brier": 0.13, "ece": 0.012, "baseline_auc": 0.79, "oracle_auc": 0.9},
        params={"max_depth": "5", "max_iter": "40", "seed": "7"},
        roc=roc, reliability=reliability, deciles=deciles,
        importance=importance, fairness=fairness, qini=qini,
        notes=("protected attributes excluded: race, ethnicity",),
    )


def _empty_optional(data: ReportData) -> ReportData:
    return dataclasses.replace(
        data,
        importance=pd.DataFrame(columns=["feature", "value"]),
        fairness=pd.DataFrame(columns=["attribute", "group", "n", "mean_score", "mean_label", "ece"]),
        qini=None,
    )


def _assert_png(path):
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC, path
    assert len(blob) > 5_000, (path, len(blob))
    width, height = int.from_bytes(blob[16:20], "big"), int.from_bytes(blob[20:24], "big")
    assert width > 200 and height > 200, (path, width, height)


def test_writes_every_plot_and_the_page(tmp_path):
    out = tmp_path / "nested" / "report"  # created on demand
    written = write_report(_data(), out)

    assert set(written) == ALWAYS | OPTIONAL
    assert {p.name for p in out.iterdir()} == ALWAYS | OPTIONAL
    for name, path in written.items():
        assert path == out / name and path.is_file()
        if name.endswith(".png"):
            _assert_png(path)
    assert plt.get_fignums() == []  # every figure closed


def test_html_shows_metrics_params_tables_and_images(tmp_path):
    data = _data()
    page = write_report(data, tmp_path)["report.html"].read_text(encoding="utf-8")

    assert "<title>turnout — gbt — votelake-turnout v3</title>" in page
    for value in ("0.8700", "0.4100", "0.1300", "0.0120", "0.7900", "0.9000"):
        assert value in page
    for key, value in data.params.items():
        assert f"<td>{key}</td><td>{value}</td>" in page
    for name in ("roc.png", "calibration.png", "lift.png", "importance.png", "fairness.png", "qini.png"):
        assert f'<img src="{name}"' in page
    # decile table: one row per decile with rounded numbers
    assert re.findall(r"<td>(\d+)</td>\s*<td>100</td>", page) == [str(d) for d in range(1, 11)]
    assert "<td>2.0444</td>" in page and "<td>0.2044</td>" in page and "<td>1.0000</td>" in page
    # fairness table: each group with its ece
    for group in ("18-29", "30-64", "65+"):
        assert f"<td>{group}</td>" in page
    assert "0.0210" in page
    assert "<p>protected attributes excluded: race, ethnicity</p>" in page
    assert "not available" not in page
    # self-contained: no scripts, no remote resources
    assert "<script" not in page and "http" not in page


def test_empty_importance_fairness_and_no_qini_are_skipped(tmp_path):
    written = write_report(_empty_optional(_data()), tmp_path)

    assert set(written) == ALWAYS
    for name in OPTIONAL:
        assert not (tmp_path / name).exists()
    page = written["report.html"].read_text(encoding="utf-8")
    for heading in ("Feature importance", "Fairness by group", "Qini curve"):
        assert f"{heading} not available." in page
    for name in OPTIONAL:
        assert name not in page
    for name in ALWAYS - {"report.html"}:
        _assert_png(tmp_path / name)


def test_text_is_escaped(tmp_path):
    data = dataclasses.replace(
        _data(),
        title="<script>alert('title')</script>",
        notes=("<script>alert(1)</script> & more",),
        params={"<b>key</b>": "<i>value</i>"},
        # "$...$" would be mathtext in matplotlib labels; it must draw as plain text
        importance=pd.DataFrame({"feature": ["spend_$_to_$", "<feat>"], "value": [0.5, -0.2]}),
    )
    page = write_report(data, tmp_path)["report.html"].read_text(encoding="utf-8")

    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in page
    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</p>" in page
    assert "&lt;b&gt;key&lt;/b&gt;" in page
    _assert_png(tmp_path / "importance.png")


def test_missing_column_is_a_clear_error(tmp_path):
    data = dataclasses.replace(_data(), roc=pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}))
    with pytest.raises(ValueError, match=r"roc lacks column\(s\): curve"):
        write_report(data, tmp_path)


def test_reliability_bins_of_a_few_voters_are_marked_off_the_curve():
    from matplotlib.figure import Figure

    from votelake.models.report import MIN_BIN_VOTERS, _calibration

    data = _data()  # the calibrated curve has a bin of 20 voters at 0.12
    fig = Figure()
    _calibration(fig, data)
    top = fig.axes[0]
    lines = {line.get_label(): list(line.get_xdata()) for line in top.lines}
    assert lines["calibrated"] == [0.37, 0.62, 0.88] and lines["raw"] == [0.1, 0.35, 0.6, 0.85]
    hollow = [c for c in top.collections if c.get_label() == f"bins of fewer than {MIN_BIN_VOTERS} voters"]
    assert len(hollow) == 1 and [tuple(p) for p in hollow[0].get_offsets()] == [(0.12, 0.11)]
