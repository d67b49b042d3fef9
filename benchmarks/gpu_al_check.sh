#!/usr/bin/env bash
# The active-learning profile's training on a CUDA GPU, twice at once (issue #29):
#
#     bash benchmarks/gpu_al_check.sh OUT_DIR [SEED]
#
# One seed of configs/active-learning.yaml (both corpora, every strategy's rounds and the
# full-data line; the successor check left out) run by its stages, as the Snakefile's
# rules call them, in two copies of the checkout with their own MLflow stores; each
# strategy's chain of rounds is a process of its own, all chains of a copy at once. Then
# every prepared, selection, model and metric file of the two copies is compared byte for
# byte, and each copy's wall time printed. Beside them, the golden jobs once on CUDA, their
# hashes recorded in tests/golden_hashes_gpu.json under this machine's GPU key.
# DATA: the folder holding ud-ewt/ (default ../shared/data); DEVICE=cpu dry-runs the
# plumbing on a machine without a GPU; FRACTIONS (a YAML list) shortens the rounds and
# CORPORA (a YAML list) picks corpora and GOLDEN=0 skips the golden jobs, for such a dry run;
# LIMIT (seconds) stops both copies then, and only rounds both finished are compared; JOBS
# (default 7) chains of a copy run at once. A GPU image without spacy-lookups-data needs
# its two English lexeme tables (data/en_lexeme_{cluster,prob}.json.gz, with __init__.py and
# the dist-info METADATA) as a package folder on PYTHONPATH: `fast` reads them.
set -uo pipefail
out=$(realpath -m "${1:?usage: gpu_al_check.sh OUT_DIR [SEED]}")
seed=${2:-1}
mkdir -p "$out"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
data=$(realpath -m "${DATA:-../shared/data}")
root=$(pwd)
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# The profile's params resolved into one file: device and seed fixed, the data path made
# absolute (the copies live elsewhere).
$py - "$out/params.yaml" "$device" "$seed" "$data" "${FRACTIONS:-}" "${CORPORA:-}" <<'EOF' || exit 1
import shutil, sys
import yaml
from pipeline import config
target, device, seed, data, fractions, corpora = sys.argv[1:]
cfg = config.drop_nulls(config.deep_merge(config.read_yaml("params.yaml"),
                                          config.read_yaml("configs/active-learning.yaml")))
cfg.update(device=device, seeds=[int(seed)])
if not (shutil.which("cc") or shutil.which("gcc")):
    print("no C compiler for portable mode's MKL shim: numerics native")
    cfg["numerics"] = "native"
sim = cfg["active_learning"]["simulation"]
sim["successor"] = None  # not run here
if fractions:
    sim["fractions"] = yaml.safe_load(fractions)
if corpora:
    sim["corpora"] = yaml.safe_load(corpora)
for corpus in cfg["tagging"]["corpora"].values():
    for key in ("train", "dev"):
        if key in corpus:
            corpus[key] = corpus[key].replace("../shared/data", data)
config.validate(cfg, target)
with open(target, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
EOF
export PIPELINE_PARAMS=$out/params.yaml
rounds=$($py -c "from pipeline import config; print(len(config.load()['active_learning']['simulation']['fractions']) - 1)")
strategies=$($py -c "from pipeline import config; print(*config.load()['active_learning']['simulation']['strategies'])")
corpora=$($py -c "from pipeline import config; print(*config.load()['active_learning']['simulation']['corpora'])")
{ nvidia-smi 2>&1 | head -n 12; $py -c "import torch; from pipeline.seeding import gpu_key
print(gpu_key(torch.device('cuda')) if torch.cuda.is_available() else 'no CUDA')"; } \
  > "$out/env.txt" 2>&1
cat "$out/env.txt"

p="$py -m pipeline"
chain() {  # corpus strategy: rounds 1..n of one strategy, in order
  for r in $(seq 1 "$rounds"); do
    $p al-round --corpus "$1" --strategy "$2" --seed "$seed" --round "$r" || return 1
  done
}
export -f chain
export p seed rounds
profile() {  # one copy: prepare, the shared seed sets and full-data lines, then the chains
  $p export --name uner_ewt_dev || return 1
  for corpus in $corpora; do $p prepare-tagging --corpus "$corpus" || return 1; done
  for corpus in $corpora; do
    for strategy in random full; do
      $p al-round --corpus $corpus --strategy $strategy --seed "$seed" --round 0 &
    done
  done
  wait
  for corpus in $corpora; do for s in $strategies; do echo "$corpus $s"; done; done |
    xargs -P "${JOBS:-7}" -L 1 bash -c 'chain "$0" "$1" > "logs/chain-$0-$1.log" 2>&1 || echo "failed: $0 $1"'
}
export -f profile
export corpora strategies
pids=()
for i in 1 2; do
  rm -rf "/tmp/al$i" && mkdir -p "/tmp/al$i/logs"
  tar -C "$root" --exclude=./.whl --exclude=./.gpu --exclude='./.venv*' --exclude=./results \
    --exclude=./models --exclude=./data/prepared --exclude=./mlflow.db --exclude=./mlartifacts \
    -cf - . | tar -C "/tmp/al$i" -xf -
  # A session of its own, so that LIMIT can stop the copy with every job it started.
  setsid bash -c "cd /tmp/al$i && SECONDS=0 && profile && echo \"profile copy $i: \$SECONDS s wall\"" \
    > "$out/profile$i.log" 2>&1 &
  pids+=($!)
done
start=$SECONDS
if [ "${GOLDEN:-1}" = 1 ]; then
  env -u PIPELINE_PARAMS $py -m pipeline golden --device "$device" > "$out/golden.json" \
    2> "$out/golden.err"  # params.yaml's defaults, as the golden test reads them
  echo "golden jobs: exit $?, $((SECONDS - start)) s"
fi
while kill -0 "${pids[@]}" 2>/dev/null && [ $((SECONDS - start)) -lt "${LIMIT:-86400}" ]; do
  sleep 2
done
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null && echo "LIMIT ${LIMIT:-} s: copy stopped" && kill -- -"$pid"
done
wait
tail -n 5 "$out"/profile?.log

$py benchmarks/compare_outputs.py /tmp/al1 /tmp/al2 "$out/outputs.json" \
  data/prepared results/active_learning
[ "$device" = cuda ] && $py - "$out" <<'EOF'
"""Record the golden hashes under this machine's GPU key."""
import json, sys
from pathlib import Path
import torch
from pipeline.seeding import gpu_key
source = Path(sys.argv[1]) / "golden.json"
golden = json.loads(source.read_text() or "{}") if source.exists() else {}
if golden:
    path = Path("tests/golden_hashes_gpu.json")
    recorded = json.loads(path.read_text())
    recorded[gpu_key(torch.device("cuda"))] = golden
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    (Path(sys.argv[1]) / "golden_hashes_gpu.json").write_text(path.read_text())
EOF
cp -r /tmp/al1/results/active_learning "$out/results-1" 2>/dev/null
find "$out/results-1" -name model.pt -delete 2>/dev/null
exit 0
