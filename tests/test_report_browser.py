"""The results report in a real browser: Debian's chromium and chromedriver driven by
Selenium, as the labeling-page test.

Three reports: the tiny DAG's (the end-to-end tests' run, made by its report job), the
default run's (rendered here by the report stage from this checkout's results/, when
`make run` has made them), and the paper-mnist-test profile's (7 methods x 5 seeds: the
real report stage over made-up results, tests/synthetic_results.py). In each: every image
is decoded and drawn with a size, the contents list reaches every section, and a per-seed
row's figure link opens that job's figure full size over the page and closes again. Every
number of the summary figures is checked against results.csv in tests/test_report.py and
below. DOCS_SCREENSHOT=1 refreshes the README's screenshots (docs/img/report-*.png).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from projects import sh
from synthetic_results import synthesise
from test_report import assert_figure_shows_csv, read_csv

from pipeline import config, report, workflow
from tests import chromium
from tests.chromium import requires_chromium, until

pytestmark = [pytest.mark.browser, requires_chromium]
browser = chromium.browser
WINDOW = "1280,900"
ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "configs" / "paper-mnist-test.yaml"


def rendered(root: Path, cfg: dict) -> Path:
    """Run the report stage in ``root`` (which holds the results) for ``cfg``."""
    (root / "params.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    sh(root, sys.executable, "-m", "pipeline", "report", env={config.ENV_VAR: ""})
    return root


@pytest.fixture(params=["tiny", "default", "paper"])
def run_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A directory with results/ and the reports/ made from them."""
    if request.param == "tiny":
        return request.getfixturevalue("project")
    if request.param == "default":
        cfg = config.load(ROOT / config.PARAMS_FILE)
        missing = [j for j in jobs(cfg) if not (ROOT / j / "metrics.json").exists()]
        if missing:
            pytest.skip(f"no default run in this checkout (`make run`): {missing[0]} missing")
        (tmp_path / "results").symlink_to(ROOT / "results")
        return rendered(tmp_path, cfg)
    cfg = config.load(ROOT / config.PARAMS_FILE, [str(PROFILE)])
    synthesise(tmp_path, cfg)
    return rendered(tmp_path, cfg)


def jobs(cfg: dict) -> list[str]:
    """The result directory of every evaluation job of ``cfg``."""
    return [workflow.path("clustering_result", dataset=d, model=m, seed=s)
            for d in cfg.get("clustering", {}).get("datasets", {})
            for m in cfg["clustering"]["models"] for s in cfg["seeds"]] + [
        workflow.path("tagging_result", corpus=c, model=m, seed=s)
        for c in cfg.get("tagging", {}).get("corpora", {})
        for m in workflow.tagging_models(cfg, c) for s in cfg["seeds"]]


def test_the_report_in_a_browser(run_dir, browser, request, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    reports = run_dir / workflow.path("report")
    entries = json.loads((reports / "results.json").read_text())
    frame = read_csv(reports / "results.csv")
    browser.get((reports / "results.html").as_uri())

    sections = browser.find_elements(By.TAG_NAME, "section")
    assert len(sections) == len(entries) > 0
    assert [a.get_attribute("hash") for a in browser.find_elements(By.CSS_SELECTOR, "nav a")] \
        == [f"#{s.get_attribute('id')}" for s in sections]

    # every image decoded and laid out: the summary figures and every job's figures
    images = browser.execute_script("""return [...document.images].map(i => {
        const r = i.getBoundingClientRect();
        return [i.complete, i.naturalWidth, i.naturalHeight, r.width, r.height];});""")
    per_job = sum(len(list((run_dir / workflow.path(f"{r.task}_result", model=r.model,
                                                     seed=r.seed, **{key(r.task): r.dataset}))
                           .rglob("*.png"))) for r in frame.itertuples())
    assert len(images) == len(entries) + per_job
    assert all(done and w > 0 and h > 0 and rw > 0 and rh > 0 for done, w, h, rw, rh in images)
    summaries = browser.find_elements(By.CSS_SELECTOR, "figure.summary img")
    assert len(summaries) == len(entries)
    for img, entry in zip(summaries, entries, strict=True):  # the figure of results.json
        drawn = base64.b64decode(img.get_attribute("src").split(",", 1)[1])
        assert drawn == report.png(report.metric_figure(entry))
    screenshot = tmp_path / "report.png"
    browser.save_screenshot(str(screenshot))

    # a row's figure link opens that job's figure full size, and a click beside it closes it
    link = browser.find_element(By.CSS_SELECTOR, "table.seeds .fig a.open")
    img = link.find_element(By.TAG_NAME, "img")
    source = Path(link.get_attribute("title").split(": ", 1)[1])
    assert base64.b64decode(img.get_attribute("src").split(",", 1)[1]) \
        == (run_dir / source).read_bytes()
    small = img.size
    link.click()
    until("the figure full size", lambda: img.size["width"] > 4 * small["width"])
    assert browser.execute_script("""const r = arguments[0].getBoundingClientRect();
        return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)
            === arguments[0];""", img)
    opened = tmp_path / "figure.png"
    browser.save_screenshot(str(opened))
    close = link.find_element(By.XPATH, "following-sibling::a[@class='close']")
    ActionChains(browser).move_to_element_with_offset(
        close, 5 - close.size["width"] // 2, 5 - close.size["height"] // 2).click().perform()
    until("the figure back in its row", lambda: img.size == small)

    name = request.node.callspec.params["run_dir"]
    if os.environ.get("DOCS_SCREENSHOT") and name != "tiny":
        shutil.copyfile(screenshot, ROOT / "docs" / "img" / f"report-{name}.png")
        if name == "default":
            shutil.copyfile(opened, ROOT / "docs" / "img" / "report-default-figure.png")


def key(task: str) -> str:
    return "dataset" if task == "clustering" else "corpus"


def test_every_number_in_the_real_runs_figures_is_in_results_csv(project):
    """The tiny DAG's report: results.json holds results.csv's values, and the summary
    figure drawn from it shows exactly those (what the page embeds is checked above)."""
    reports = project / workflow.path("report")
    entries = json.loads((reports / "results.json").read_text())
    frame = read_csv(reports / "results.csv")
    for entry in entries:
        rows = frame[(frame["task"] == entry["task"]) & (frame["dataset"] == entry["dataset"])]
        assert [m["model"] for m in entry["models"]] == list(dict.fromkeys(rows["model"]))
        assert_figure_shows_csv(report.metric_figure(entry), rows, entry["metric"],
                                entry["confidence"])
