import base64
import json
import re
from io import StringIO

import numpy as np
import pandas as pd
import pytest

from pipeline.report import (
    Table,
    analyse,
    csv,
    headline,
    html_report,
    markdown,
    metric_figure,
    ordered_pairs,
    paired,
    png,
    summary,
)

RC = {"confidence": 0.95, "bootstrap_resamples": 2000, "bootstrap_seed": 0}


def test_summary_mean_std_and_t_interval_by_hand():
    s = summary(np.array([0.80, 0.82, 0.84]), 0.95)
    assert s["mean"] == pytest.approx(0.82)
    assert s["std"] == pytest.approx(0.02)  # sample std (ddof=1)
    # t(0.975, 2) = 4.302653; half width = 4.302653 * 0.02 / sqrt(3)
    assert s["ci_high"] - s["mean"] == pytest.approx(4.302653 * 0.02 / np.sqrt(3), rel=1e-5)
    assert (s["min"], s["max"]) == (0.80, 0.84)


def test_paired_comparison_detects_a_consistent_difference():
    a = np.array([0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97])
    b = a - np.array([0.05, 0.04, 0.06, 0.05, 0.05, 0.04, 0.06, 0.05])
    c = paired(a, b, alpha=0.05, resamples=2000, seed=0)
    assert c["mean_diff"] == pytest.approx(0.05)
    assert 0.04 <= c["ci_low"] < 0.05 < c["ci_high"] <= 0.06
    assert c["p_wilcoxon"] == pytest.approx(2 / 2**8)  # all 8 differences positive: exact p
    assert c["significant"]


def test_paired_comparison_of_noise_is_not_significant():
    a = np.array([0.90, 0.80, 0.85, 0.95])
    b = np.array([0.85, 0.85, 0.90, 0.90])
    c = paired(a, b, alpha=0.05, resamples=2000, seed=0)
    assert not c["significant"] and c["ci_low"] < 0 < c["ci_high"]


def table() -> Table:
    rows = [{"model": m, "seed": s, "acc": v, "nmi": v - 0.1, "ari": v - 0.2,
             "run_id": f"{m}{s}", "train_run_id": f"t{m}{s}"}
            for m, vals in {"kmeans": [0.5, 0.52, 0.54], "dec": [0.8, 0.85, 0.9]}.items()
            for s, v in zip([0, 1, 2], vals, strict=True)]
    return Table("clustering", "digits", pd.DataFrame(rows))


CFG = {"seeds": [0, 1, 2], "report": RC}


def test_markdown_table_has_every_model_seed_and_run():
    t = table()
    md = markdown([t], [analyse(t, RC)], CFG)
    assert "| kmeans | 0.5200 ± 0.0200 |" in md
    assert "| dec | 0.8500 ± 0.0500 |" in md
    # per-seed rows give the command that re-runs their MLflow runs
    assert "| dec | 2 | 0.9000 | 0.8000 | 0.7000 | `python -m pipeline replicate tdec2 dec2` |" \
        in md


def test_comparisons_are_a_matrix_of_row_minus_column_best_first():
    t = table()
    entry = analyse(t, RC)
    (c,) = entry["comparisons"]  # one pair, stored once
    assert (c["a"], c["b"], c["higher"], c["lower"], c["n"]) == ("kmeans", "dec", 0, 3, 3)
    assert c["mean_diff"] == pytest.approx(-0.33) and c["p_wilcoxon"] == pytest.approx(0.25)
    mirror = ordered_pairs(entry)["dec", "kmeans"]
    assert mirror["mean_diff"] == pytest.approx(0.33)
    assert (mirror["ci_low"], mirror["ci_high"]) == (-c["ci_high"], -c["ci_low"])
    assert (mirror["higher"], mirror["lower"]) == (3, 0)
    md = markdown([t], [entry], CFG)
    assert "| row − column | dec | kmeans |" in md  # best mean first
    assert "| dec | · | +0.3300 (p 0.250) |" in md
    assert "| kmeans | -0.3300 (p 0.250) | · |" in md
    assert "smallest attainable two-sided p is 0.250" in md


def test_headline_names_the_best_model_its_interval_and_what_it_beats():
    a = np.array([0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97])
    rows = [{"model": m, "seed": s, "acc": v, "run_id": "r", "train_run_id": "t"}
            for m, values in {"worse": a - 0.05, "best": a, "same": a - 0.001 * (-1) ** np.arange(8)
                              }.items() for s, v in enumerate(values)]
    entry = analyse(Table("clustering", "d", pd.DataFrame(rows)), RC)
    best = summary(a, 0.95)
    assert headline(entry) == (
        f"Best mean acc: best, {best['mean']:.4f} (95% interval [{best['ci_low']:.4f}, "
        f"{best['ci_high']:.4f}], 8 seeds); significantly above 1 of the 2 other models "
        "(paired over seeds).")


def drawn(fig) -> dict[str, dict]:
    """What the summary figure shows, per model (by its y tick label): seed points, mean,
    interval and the printed mean."""
    (ax,) = fig.axes
    at = {round(y): label.get_text() for y, label in zip(ax.get_yticks(), ax.get_yticklabels(),
                                                         strict=True)}
    out = {m: {"values": []} for m in at.values()}
    for artist in ax.get_children():
        gid = artist.get_gid()
        if gid == "seeds":
            for x, y in artist.get_offsets():
                out[at[round(y)]]["values"].append(float(x))
        elif gid == "mean":
            for x, y in zip(artist.get_xdata(), artist.get_ydata(), strict=True):
                out[at[round(y)]]["mean"] = float(x)
        elif gid == "interval":
            for (lo, y), (hi, _) in artist.get_segments():
                out[at[round(y)]]["interval"] = (float(lo), float(hi))
        elif gid == "mean value":
            out[at[round(artist.get_position()[1])]]["printed"] = artist.get_text()
    return out


def assert_figure_shows_csv(fig, frame: pd.DataFrame, metric: str, confidence: float) -> None:
    """Every number the figure draws is exactly one of results.csv's rows ``frame`` (read
    with ``read_csv``), or the mean and t-interval of those values."""
    shown = drawn(fig)
    assert set(shown) == set(frame["model"])
    for model, group in frame.groupby("model"):
        values = group[metric].to_numpy(float)
        s = summary(values, confidence)
        assert shown[model]["values"] == values.tolist()
        assert shown[model]["mean"] == s["mean"]
        assert shown[model]["interval"] == (s["ci_low"], s["ci_high"])
        assert shown[model]["printed"] == f"{s['mean']:.4f}"


def read_csv(text_or_path) -> pd.DataFrame:
    """results.csv as written: every float back to the same bits."""
    return pd.read_csv(text_or_path, float_precision="round_trip")


def test_every_number_in_the_figure_is_the_number_in_results_csv():
    t = table()
    written = read_csv(StringIO(csv([t])))
    assert_figure_shows_csv(metric_figure(analyse(t, RC)), written, "acc", RC["confidence"])
    # the check can fail: a figure of other numbers does not pass
    other = table()
    other.frame.loc[0, "acc"] = 0.51
    with pytest.raises(AssertionError):
        assert_figure_shows_csv(metric_figure(analyse(other, RC)), written, "acc",
                                RC["confidence"])


def test_html_is_one_stable_page_with_the_figure_drawn_from_the_json(tmp_path):
    t = table()
    figure = tmp_path / "figures" / "embedding.png"
    figure.parent.mkdir()
    figure.write_bytes(png(metric_figure(analyse(t, RC))))  # any real PNG
    t.figures = {("dec", 1): [figure]}
    entry = json.loads(json.dumps(analyse(t, RC)))  # as results.json holds it
    page = html_report([t], [entry], CFG)
    assert page == html_report([t], [analyse(t, RC)], CFG)  # byte-stable
    images = re.findall(r"<img src='data:image/png;base64,([^']+)'", page)
    assert base64.b64decode(images[0]) == png(metric_figure(entry))  # the summary figure
    assert base64.b64decode(images[1]) == figure.read_bytes()  # dec seed 1's map, embedded
    assert len(images) == 2 and "src='http" not in page and "<script" not in page


def test_html_report_escapes_markup_that_comes_from_data():
    label = "<img src=x onerror=alert(1)>"
    t = table()
    t.frame["model"] = t.frame["model"].replace("dec", label)
    t.frame["run_id"] = "'><script>alert(2)</script>"
    t.dataset = "<b>digits</b>"
    page = html_report([t], [analyse(t, RC)], CFG)
    assert "<img src=x" not in page and "<script>" not in page and "<b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;digits&lt;/b&gt;" in page
