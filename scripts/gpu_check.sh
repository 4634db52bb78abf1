#!/usr/bin/env bash
# One call on a machine with a GPU: the CUDA tests, then the GPU benchmarks, then one table of ratios.
#
#   scripts/gpu_check.sh            # run (7.5 minutes at most: each step has its own time limit)
#   scripts/gpu_check.sh --dry-run  # print what would run, run nothing
#
# Without a CUDA device it says so and exits 0 at once. Python: $PYTHON, else .venv/bin/python,
# else python3. Each benchmark is a ratio against a baseline timed in the same run on the same
# device (benchmarks/_record.py); nothing here writes docs/data/benchmarks.json.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

RECORDS=$(mktemp -t gpu_check.XXXXXX.jsonl)
export FINSLERLIB_BENCH_RECORD="$RECORDS"
STATUS=0

step() {  # step <seconds> <label> <command...>
  local limit=$1 label=$2
  shift 2
  echo "=== $label (limit ${limit}s): $*"
  [ "$DRY" = 1 ] && return 0
  local start=$SECONDS
  timeout --signal=INT --kill-after=10 "$limit" "$@"
  local rc=$?
  echo "--- $label: exit $rc after $((SECONDS - start)) s"
  [ "$rc" = 0 ] || STATUS=1
}

if [ "$DRY" = 0 ]; then
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is False): nothing to do."
    rm -f "$RECORDS"
    exit 0
  fi
  "$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
fi

# 1. every test parametrized on the cuda device (ids contain "cuda") or marked `cuda`
step 170 "CUDA tests" "$PY" -m pytest -q -p no:cacheprovider -m "not slow" -k cuda tests
# 2. GPU benchmarks (ratios against a baseline on the same device, same run)
step 50 "cdist: Randers vs torch.cdist" "$PY" benchmarks/bench_randers_cdist.py --device cuda --repeats 20 --warmup 3
step 50 "cdist: FunkBall vs torch.cdist" "$PY" benchmarks/bench_funk_cdist.py --device cuda --repeats 20 --warmup 3
step 80 "FAIMHead vs nn.Linear" "$PY" benchmarks/bench_head.py --device cuda --classes 1000 100000 --repeats 30 --einsum-repeats 1
step 50 "Killing distances vs geoopt.Sphere.dist" "$PY" benchmarks/bench_navigation.py --device cuda --pairs 20000 --repeats 10
# 3. the eikonal map, once finslerlib.eikonal and its benchmark exist (limits: 450 s in all)
if [ -f benchmarks/bench_eikonal.py ] && { [ "$DRY" = 1 ] || "$PY" -c "import finslerlib.eikonal" 2>/dev/null; }; then
  step 50 "eikonal map" "$PY" benchmarks/bench_eikonal.py --device cuda
else
  echo "=== eikonal map: skipped (needs finslerlib.eikonal and benchmarks/bench_eikonal.py)"
fi

if [ "$DRY" = 0 ]; then
  echo
  echo "=== ratios (each against its baseline on the same device, same run)"
  "$PY" - "$RECORDS" <<'PYEOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
width = max([len(r["name"]) for r in rows] + [9])
print(f"{'benchmark':<{width}}  {'ratio':>9}  goal      against")
for r in rows:
    op = {"<=": "<=", ">=": ">="}[r["bar_op"]]
    ok = r["measured"] <= r["bar"] if op == "<=" else r["measured"] >= r["bar"]
    print(f"{r['name']:<{width}}  {r['measured']:>8.3g}x  {op} {r['bar']:g}x {'ok' if ok else 'MISS'}  {r['baseline']}")
if not rows:
    print("(no figures recorded)")
PYEOF
fi
rm -f "$RECORDS"
exit $STATUS
