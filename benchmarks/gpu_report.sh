#!/usr/bin/env bash
# Runs benchmarks/gpu_report.py on the GPU machine (see that file's docstring), from any folder:
#   bash benchmarks/gpu_report.sh [gpu_report.py flags]
# Output: $OUT (else runs/gpu_report): report.json, report.md, log.txt and one
# <dataset>_<precision>_<H>x<W>_k<K>[_q<config>].npz per group of Levin/Lai images
# (levin_float32_255x255_k21_qa.npz: the question's config a; levin_default_255x255_k17.npz).
# What that machine lacks is installed from files in this repository (no index is reachable):
# the ml-collections wheel into /tmp/jaxdeconv_site, the project itself with --no-deps. Both are
# also put on PYTHONPATH, so the report runs even if an install step fails.
set -u -o pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/gpu_report}"
mkdir -p "$out"
py="${PYTHON:-python3}"
site=/tmp/jaxdeconv_site
export PYTHONUNBUFFERED=1
{
  echo "# $(date -u +%FT%TZ) gpu_report.sh in $PWD with $py"
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" benchmarks/wheels/*.whl || echo "wheel install failed"
  "$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
    || echo "editable install failed; PYTHONPATH holds the project"
} 2>&1 | tee "$out/log.txt"
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
"$py" benchmarks/gpu_report.py --out="$out" "$@" 2>&1 | tee -a "$out/log.txt"
