#!/usr/bin/env bash
# Opt-in PyTorch reference benchmark (not part of CI).
#
#   bash bench/run-pytorch.sh [pytorch_reference.py flags...]
#   e.g. bash bench/run-pytorch.sh --threads 2 --configs e1,e2 --repeats 5
#
# 1. Creates bench/.venv (python3 -m venv) if missing or broken, and installs
#    torch, numpy and threadpoolctl there from PyPI if they are not importable.
# 2. Runs bench/pytorch_reference.py with the given flags (plus --idle-wait --max-others 0.05:
#    each repetition waits for an idle machine, and one that other processes
#    disturbed anyway is discarded and redone).
# 3. Measures f32 GEMM throughput (bench/gemm.py; numpy with OPENBLAS_CORETYPE
#    and OPENBLAS_L2_SIZE unset, and torch) on the same number of threads.
# 4. Writes bench/results/pytorch.json atomically (temp file, then mv).
#
# Environment: PYTHON (default python3) makes the venv; OUT (default
# bench/results/pytorch.json) is where the result goes; SKIP_GEMM=1 skips step 3;
# IDLE_TIMEOUT (default 60 s) and MAX_OTHERS (default 0.05) tune the waiting.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="$venv/bin/python"
out="${OUT:-$here/results/pytorch.json}"

# Threads for the GEMM measurement: the same as --threads given to the benchmark.
threads=2
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --threads) threads="${args[$((i + 1))]:-2}" ;;
    --threads=*) threads="${args[$i]#--threads=}" ;;
  esac
done

# One run at a time (the venv and the output are shared).
exec 9>"$here/.run-pytorch.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

if ! "$py" -c 'import sys' >/dev/null 2>&1; then
  echo "run-pytorch: creating $venv" >&2
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$py" -c 'import torch, numpy, threadpoolctl' >/dev/null 2>&1; then
  echo "run-pytorch: installing torch, numpy, threadpoolctl into $venv" >&2
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet torch numpy threadpoolctl
fi

mkdir -p "$(dirname "$out")"
tmpdir="$(mktemp -d "$(dirname "$out")/.pytorch-run.XXXXXX")"
trap 'rm -rf "$tmpdir"' EXIT

"$py" "$here/pytorch_reference.py" --idle-wait --idle-timeout "${IDLE_TIMEOUT:-60}" --max-others "${MAX_OTHERS:-0.05}" "$@" --json-out "$tmpdir/steps.json"

if [[ "${SKIP_GEMM:-0}" != 1 ]]; then
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    "$py" "$here/gemm.py" --threads "$threads" --backend numpy --json-out "$tmpdir/gemm-numpy.json" >/dev/null
  "$py" "$here/gemm.py" --threads "$threads" --backend torch --json-out "$tmpdir/gemm-torch.json" >/dev/null
fi

CALLER_OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE-<unset>}" CALLER_OPENBLAS_L2_SIZE="${OPENBLAS_L2_SIZE-<unset>}" \
"$py" - "$tmpdir" "$out.tmp" "$@" <<'EOF'
import json, os, sys
tmpdir, dest = sys.argv[1], sys.argv[2]
doc = json.load(open(os.path.join(tmpdir, "steps.json")))
gemm = {}
for backend in ("numpy", "torch"):
    p = os.path.join(tmpdir, "gemm-%s.json" % backend)
    if os.path.exists(p):
        g = json.load(open(p))
        gemm.setdefault("threads", g["threads"])
        gemm.setdefault("statistic", g["statistic"])
        gemm[backend] = g[backend]
        if backend == "numpy":
            gemm[backend]["openblas_env_at_run"] = g["env"]
            gemm[backend]["openblas_env_of_caller"] = {
                k: os.environ.get("CALLER_" + k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
if gemm:
    doc["gemm_gflops"] = gemm
doc["command"] = "bash bench/run-pytorch.sh " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else "bash bench/run-pytorch.sh"
with open(dest, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
EOF
mv -f "$out.tmp" "$out"
echo "run-pytorch: wrote $out" >&2
