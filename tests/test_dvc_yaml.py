"""dvc.yaml and the Snakefile must describe the same stages."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import config, dvcgen, workflow

ROOT = Path(__file__).resolve().parents[1]


def test_committed_dvc_yaml_matches_the_snakefile():
    proc = subprocess.run([sys.executable, "-m", "pipeline", "dvc-yaml", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _same_stages(repo_dir: Path, names: dict, cfg: dict) -> None:
    """DVC's own reading of dvc.yaml in ``repo_dir`` (templates expanded) against the jobs."""
    from dvc.repo import Repo

    with Repo(str(repo_dir)) as repo:
        stages = {s.name: s for s in repo.index.stages if s.path == str(repo_dir / "dvc.yaml")}
    assert set(stages) == set(names)
    for name, stage in stages.items():
        job = names[name]
        assert stage.cmd == job.shellcmd.strip()
        params = [d for d in stage.deps if d.def_path == "params.yaml"]
        assert {str(d.def_path) for d in stage.deps} - {"params.yaml"} == \
            set(map(str, job.input))
        assert params and set(params[0].params) == set(
            dvcgen.workflow.param_keys(dvcgen.STAGE_OF_RULE[job.rule.name], cfg,
                                       **dict(job.wildcards_dict)))
        assert {str(o.def_path) for o in stage.outs} == set(map(str, job.output))


def test_dvc_itself_reads_the_same_stages():
    """Parse dvc.yaml with DVC's own loader and compare with Snakemake's jobs one by one;
    each rule is one templated stage (two where jobs of a rule differ in more than their
    wildcards: k-means has no autoencoder, the two corpora come from different sources)."""
    cfg = config.load(ROOT / "params.yaml")
    declared, names = dvcgen.stages(cfg)
    _same_stages(ROOT, names, cfg)
    assert len(names) == 68 and len(declared["stages"]) <= 12
    assert "train_tagger@uner_ewt_dev-bilstm_cnn_crf-0" in names


def test_a_dag_that_is_not_every_combination_is_templated_too(tmp_path):
    """With POS-to-NER transfer the transfer variant has no job on the POS corpus: its rule's
    jobs are not a full matrix, so they become a foreach whose stages DVC names as it would
    a matrix's; DVC reads back exactly the DAG's jobs."""
    overlay = {"seeds": [0, 1], "tagging": {
        "transfer_corpus": "ewt_pos_dev", "models": ["bilstm_cnn_crf", "cnn_transfer"],
        "variants": {"cnn_transfer": {"crf": True, "transfer": "bilstm_cnn_crf"}}}}
    (tmp_path / "transfer.yaml").write_text(yaml.safe_dump(overlay))
    cfg = config.drop_nulls(config.deep_merge(config.load(ROOT / "params.yaml"), overlay))
    jobs = dvcgen.snakemake_jobs(str(ROOT / "Snakefile"), [str(tmp_path / "transfer.yaml")])
    declared, names = dvcgen.stages(cfg, jobs)
    assert "foreach" in declared["stages"]["evaluate_tagger"]
    assert "evaluate_tagger@ewt_pos_dev-bilstm_cnn_crf-1" in names
    assert not any("ewt_pos_dev-cnn_transfer" in name for name in names)
    repo = tmp_path / "repo"
    repo.mkdir()
    from dvc.repo import Repo

    Repo.init(str(repo), no_scm=True).close()
    (repo / "dvc.yaml").write_text(yaml.safe_dump(declared, sort_keys=False))
    _same_stages(repo, names, cfg)


def test_drift_is_detected(tmp_path, monkeypatch):
    """A Snakefile edit that dvc.yaml does not follow must fail the check."""
    text = dvcgen.render(config.load(ROOT / "params.yaml"))
    data = yaml.safe_load(text)
    name = next(iter(data["stages"]))
    data["stages"][name]["cmd"] += " --extra"
    stale = tmp_path / "dvc.yaml"
    stale.write_text(dvcgen.HEADER + yaml.safe_dump(data))
    monkeypatch.chdir(ROOT)
    assert dvcgen.main(check=True, path=str(stale)) == 1
    stale.write_text(text)
    assert dvcgen.main(check=True, path=str(stale)) == 0


def test_code_dependencies_follow_the_imports(tmp_path, monkeypatch):
    """Derived from the sources: the modules the hand-kept lists missed are in, and a new
    import appears without anyone listing it."""
    assert {"annotation/adjudicate.py", "annotation/snapshot.py"} <= set(
        workflow.code("prepare_tagging"))
    assert {"pipeline/evaluate/tagging.py", "pipeline/data/embeddings.py"} <= set(
        workflow.code("train_tagger"))
    assert "pipeline/data/augment.py" in workflow.code("train_clustering")
    assert "pipeline/models/tagger.py" not in workflow.code("train_clustering")
    # a scratch package: a -> b (inside a function) -> c; d is never imported
    pkg = tmp_path / "pipeline"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pipeline import b\n")
    (pkg / "b.py").write_text("import os\nfrom pipeline.c import g\n")
    (pkg / "c.py").write_text("def g(): pass\n")
    (pkg / "d.py").write_text("")
    monkeypatch.setattr(workflow, "ROOT", tmp_path)
    workflow.imported_sources.cache_clear()
    try:
        assert workflow.imported_sources("pipeline.a") == (
            "pipeline/__init__.py", "pipeline/a.py", "pipeline/b.py", "pipeline/c.py")
    finally:
        workflow.imported_sources.cache_clear()


def test_a_transfer_job_depends_on_the_pos_model_of_its_seed(tmp_path):
    """NER with a transfer variant needs the POS model of the same seed (so a retrained POS
    model reruns it); the transfer corpus itself gets no transfer job."""
    overlay = tmp_path / "transfer.yaml"
    overlay.write_text(yaml.safe_dump({"seeds": [0, 1], "tagging": {
        "transfer_corpus": "ewt_pos_dev", "models": ["bilstm_cnn_crf", "cnn_transfer"],
        "variants": {"cnn_transfer": {"crf": True, "transfer": "bilstm_cnn_crf"}}}}))
    jobs = {"--".join([j.rule.name, *map(str, dict(sorted(j.wildcards_dict.items())).values())]): j
            for j in dvcgen.snakemake_jobs(str(ROOT / "Snakefile"), [str(overlay)])}
    for seed in (0, 1):
        job = jobs[f"train_tagger--uner_ewt_dev--cnn_transfer--{seed}"]
        assert f"models/tagging/ewt_pos_dev/bilstm_cnn_crf/seed{seed}/model.pt" in job.input
        plain = jobs[f"train_tagger--uner_ewt_dev--bilstm_cnn_crf--{seed}"]
        assert not any(str(f).startswith("models/") for f in plain.input)
    assert not any("ewt_pos_dev--cnn_transfer" in name for name in jobs)


def test_reading_the_dag_leaves_the_callers_environment_alone(tmp_path):
    """The Snakefile exports settings for its jobs; reading the DAG in-process (the
    dvc.yaml generator, the tests) must not leak them into later subprocesses."""
    overlay = tmp_path / "seeds.yaml"
    overlay.write_text("seeds: [5]\n")
    before = dict(os.environ)
    dvcgen.snakemake_jobs(str(ROOT / "Snakefile"), [str(overlay)])
    assert dict(os.environ) == before
