#!/usr/bin/env bash
# The GPU figures of the README's "Measured speed" section, in one run (on
# a lent H100, say). Runs from the repository root with the machine's own python3 and torch; nothing
# is installed (the benchmark needs only torch, transformers, tokenizers, safetensors and
# rich; cuda-python's cuda.core and NVRTC for the fused kernel's race, where present).
#
#   bash tests/tools/gpu_tables.sh OUTDIR
#
# Writes OUTDIR/doctor.json (device, and which scorer the race chose), OUTDIR/kernel.txt (the
# GPU tests: fused kernel, CUDA graphs), OUTDIR/bench-0.5b.jsonl and OUTDIR/bench-7b.jsonl
# (`unmask bench --json` rows; each row names the scorer and the race's milliseconds), and
# OUTDIR/profile-*.txt (`tests/tools/gpu_profile.py`: per-step time and where it goes).
# About six minutes on an H100, most of it the 0.5b table's typewriter and generate() rows.
set -uo pipefail
OUT_DIR="${1:?usage: gpu_tables.sh OUTDIR}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unmask() { python3 -m lsp_server.cli "$@"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT_DIR/gpu.csv" 2>&1
unmask doctor --json >"$OUT_DIR/doctor.json" 2>"$OUT_DIR/doctor.err"
python3 -m pytest -q -p no:cacheprovider tests/test_fused_confidence.py tests/test_predictors.py \
  >"$OUT_DIR/kernel.txt" 2>&1
# The rows of the targets: 0.5b, 64 tokens, 1,024 context; 7b, 128 tokens, 2,048 (and 64 tokens
# with 1,024, the checkpoint families' row). The 7b typewriter (128 full passes) is left out.
unmask bench --json --shape 7b --blocks 64,128 --context 1024,2048 --repeats 2 --cache-refresh 16 \
  --modes threshold,threshold_nocache >"$OUT_DIR/bench-7b.jsonl" 2>"$OUT_DIR/bench-7b.err"
unmask bench --json --shape 0.5b --blocks 32,64,128 --context 1024,2048 --repeats 3 \
  --cache-refresh 16 >"$OUT_DIR/bench-0.5b.jsonl" 2>"$OUT_DIR/bench-0.5b.err"
python3 tests/tools/gpu_profile.py --shape 0.5b --block 64 --context 1024 --out "$OUT_DIR/profile-0.5b" \
  >"$OUT_DIR/profile-0.5b.txt" 2>&1
python3 tests/tools/gpu_profile.py --shape 7b --block 128 --context 2048 --repeats 3 \
  --variants graphs,block-graphs --out "$OUT_DIR/profile-7b" >"$OUT_DIR/profile-7b.txt" 2>&1
python3 - "$OUT_DIR" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for name in ("bench-0.5b.jsonl", "bench-7b.jsonl"):
    path = out / name
    for line in (path.read_text().splitlines() if path.exists() else []):
        r = json.loads(line)
        print(f"{r['shape']:>5} {r['mode']:<18} block {r['block_tokens']:>4} context {r['context_tokens']:>5}"
              f"  final {r['seconds_to_final']:.3f} s  {r['tokens_per_second']:>7.1f} tok/s"
              f"  vs AR {r.get('speedup_vs_ar') or '-'}")
PY
