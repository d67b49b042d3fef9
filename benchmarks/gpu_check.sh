#!/usr/bin/env bash
# The CUDA determinism check (issue #31) as one script, for a machine with a GPU:
#
#     bash benchmarks/gpu_check.sh OUT_DIR
#
# 1. The golden jobs on CUDA (python -m pipeline golden --device cuda) once, their hashes
#    written to tests/golden_hashes_gpu.json under this machine's GPU key, then the gpu test
#    (two more runs at once, fresh processes) asserts them.
# 2. Meanwhile the real stages twice, at once, in two copies of the checkout with their own
#    MLflow stores: digits autoencoder + DEC, and the faithful tagger on the NER export, on
#    device: cuda; every output compared byte for byte (run ids and epoch timings aside),
#    the MLflow tags of the runs (env.*, determinism.*) saved.
# 3. benchmarks/bench_gpu.py: deterministic against fast settings, nothing else running.
# Everything lands in OUT_DIR. Set PYTHON to pick the interpreter; DEVICE=cpu dry-runs the
# script's plumbing on a machine without a GPU.
set -uo pipefail
out=$(realpath -m "${1:?usage: gpu_check.sh OUT_DIR}")
mkdir -p "$out"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
root=$(pwd)
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# The checkout's params with the device fixed: auto would fall back to the CPU unseen.
sed "s/^device: auto/device: $device/" params.yaml > "$out/params.yaml"
if ! command -v cc >/dev/null && ! command -v gcc >/dev/null; then
  echo "no C compiler for portable mode's MKL shim: numerics native" | tee "$out/numerics.txt"
  sed -i 's/^numerics: portable/numerics: native/' "$out/params.yaml"
fi
export PIPELINE_PARAMS=$out/params.yaml

{ nvidia-smi; $py -c "import torch; from pipeline.seeding import gpu_key, determinism_flags
print(gpu_key(torch.device('cuda')) if torch.cuda.is_available() else 'no CUDA')"; } \
  > "$out/env.txt" 2>&1
cat "$out/env.txt"

chain() {  # the stages, in the current directory, as the Snakefile's rules call them
  local p="$py -m pipeline"
  $p prepare-clustering --dataset digits &&
  $p pretrain --dataset digits --seed 0 &&
  $p train-clustering --dataset digits --model dec --seed 0 &&
  $p evaluate-clustering --dataset digits --model dec --seed 0 &&
  $p export --name uner_ewt_dev &&
  $p prepare-tagging --corpus uner_ewt_dev &&
  $p train-tagger --corpus uner_ewt_dev --model bilstm_cnn_crf --seed 0 &&
  $p evaluate-tagger --corpus uner_ewt_dev --model bilstm_cnn_crf --seed 0
}
for i in 1 2; do
  rm -rf "/tmp/chain$i" && mkdir -p "/tmp/chain$i"
  tar -C "$root" --exclude=./.whl --exclude=./.gpu --exclude=./.venv -cf - . | tar -C "/tmp/chain$i" -xf -
  (cd "/tmp/chain$i" && SECONDS=0 && chain && echo "chain $i: ${SECONDS} s") \
    > "$out/chain$i.log" 2>&1 &
done
SECONDS=0
$py -m pipeline golden --device "$device" > "$out/golden-1.json" 2> "$out/golden-1.err"
echo "golden run 1: exit $?, ${SECONDS} s"
wait
tail -n 3 "$out"/chain?.log

$py - "$out" <<'EOF'
"""Compare the two chains' outputs; save the runs' tags; record the golden hashes."""
import hashlib, json, sqlite3, sys
from pathlib import Path

import torch

from pipeline.seeding import gpu_key

out = Path(sys.argv[1])
def digests(root: Path) -> dict[str, str]:
    files = {}
    for top in ("data/annotations", "data/prepared", "models", "results"):
        for f in sorted((root / top).rglob("*")):
            if not f.is_file() or f.name == "run.json":  # run.json: the MLflow run id
                continue
            data = f.read_bytes()
            if f.name == "history.json":  # epoch timings differ on every run
                data = json.dumps({k: v for k, v in json.loads(data).items()
                                   if not k.endswith("_seconds")}, sort_keys=True).encode()
            files[str(f.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return files
one, two = digests(Path("/tmp/chain1")), digests(Path("/tmp/chain2"))
differ = sorted(f for f in one.keys() | two.keys() if one.get(f) != two.get(f))
(out / "chains.json").write_text(json.dumps({"files": one, "differ": differ}, indent=1))
print(f"stage outputs: {len(one)} files in run 1, {len(two)} in run 2, differing: {differ}")
db = sqlite3.connect("/tmp/chain1/mlflow.db")
tags = {}
for run, key, value in db.execute(
        "select r.name, t.key, t.value from tags t join runs r on r.run_uuid = t.run_uuid "
        "where t.key like 'env.%' or t.key like 'determinism.%' or t.key like 'numerics.mode'"):
    tags.setdefault(run, {})[key] = value
(out / "tags.json").write_text(json.dumps(tags, indent=1, sort_keys=True))
print(json.dumps(next(iter(tags.values()), {}), indent=1, sort_keys=True))
golden = json.loads((out / "golden-1.json").read_text() or "{}")
if golden and torch.cuda.is_available():
    path = Path("tests/golden_hashes_gpu.json")
    recorded = json.loads(path.read_text())
    recorded[gpu_key(torch.device("cuda"))] = golden
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    (out / "golden_hashes_gpu.json").write_text(path.read_text())
EOF

SECONDS=0
# Plugins of a GPU image (pytest-benchmark, ...) may import numpy before the conftest sets up
# the numeric mode, which it refuses: the test needs none of them.
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $py -m pytest -p no:cacheprovider -m gpu \
  tests/test_golden_gpu.py -rs 2>&1 | tail -n 15 \
  | tee "$out/pytest-gpu.txt"
echo "gpu test: ${SECONDS} s"
[ "$device" = cuda ] && $py benchmarks/bench_gpu.py --epochs 2 2>&1 | tee "$out/bench.txt"
exit 0
