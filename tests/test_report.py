import numpy as np
import pandas as pd
import pytest

from pipeline.report import Table, comparisons, markdown, paired, summary

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


def test_markdown_table_has_every_model_seed_and_run():
    md = markdown([table()], {"seeds": [0, 1, 2], "report": RC})
    assert "| kmeans | 0.5200 ± 0.0200 |" in md
    assert "| dec | 0.8500 ± 0.0500 |" in md
    # per-seed rows give the command that re-runs their MLflow runs
    assert "| dec | 2 | 0.9000 | 0.8000 | 0.7000 | `python -m pipeline replicate tdec2 dec2` |" \
        in md


def test_comparison_in_words_says_why_three_seeds_cannot_be_significant():
    (intro, _, line) = comparisons(table(), RC)
    assert line.startswith("- kmeans vs dec: -0.3300")
    assert "not significant" in line and "smallest attainable two-sided p is 0.250" in line
    assert line.endswith("kmeans higher in 0, lower in 3 of 3 seeds.")


def test_html_report_escapes_markup_that_comes_from_data():
    from pipeline.report import html_report

    label = "<img src=x onerror=alert(1)>"
    md = f"| model | {label} |\n|---|---|\n| dec | 0.5 |\n\n<script>alert(2)</script>\n"
    page = html_report(md, [], {"seeds": [0]})
    assert "<img" not in page and "<script>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
