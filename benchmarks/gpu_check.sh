#!/usr/bin/env bash
# The one device run of a session: CUDA tests, then the GPU benchmarks, logs under $OUT.
# Usage (on the lent GPU machine, from the repository root): bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-/tmp/regfn-gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PY:-python3}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])"; } 2>&1 | tee "$OUT/device.txt"
# Every CUDA test and the Triton engine's tests, here on the GPU (TESTS narrows it, e.g. TESTS="cuda_graph_sweep").
timeout "${TEST_S:-120}" $PY -m pytest -x -q -p no:cacheprovider tests -k "${TESTS:-cuda or triton}" 2>&1 | tail -15 > "$OUT/tests.txt"
# vmap engine, Triton engine (default tile and a few others), tutorial loop and JAX, side by side per K.
timeout "${SWEEP_S:-240}" $PY benchmarks/sweep.py --device cuda --ks "${KS:-64,4096,1024}" --epochs 2000 --seq-configs 1 \
  --triton --triton-tiles "${TILES:-32x2,32x4,128x4}" --profile "$OUT/profile.txt" > "$OUT/sweep.jsonl" 2> "$OUT/sweep.err"
# The same sweep with regfn.mlp(linear="broadcast"): tiny layers without matmul kernels.
timeout "${BROADCAST_S:-45}" $PY benchmarks/sweep.py --device cuda --ks "${BROADCAST_KS:-64,4096}" --epochs 2000 \
  --seq-configs 1 --no-jax --linear broadcast > "$OUT/sweep_broadcast.jsonl" 2>> "$OUT/sweep.err"
if [ -n "${BIG:-}" ]; then  # the issue's 65,536 configurations, auto-chunked
  timeout "${BIG_S:-90}" $PY -c "
import regfn, sys; sys.path.insert(0, 'benchmarks'); from sweep import load_data, configs
for engine in ('triton', 'vmap'):
    r = regfn.sweep(regfn.mlp((8, 6, 4, 1), output='logits'), load_data(None, 'cuda'), configs(65536), epochs=200,
                    log_every=200, quiet=True, device='cuda', engine=engine)
    print('K', len(r), r.engine, r.timings, 'diverged', len(r.diverged), flush=True)" > "$OUT/big.txt" 2>&1
fi
# Issue #22's wider MLPs (target 6: at K=1024, 50x the torch loop), regfn vs the loop vs JAX.
for workload in digits cancer; do
  timeout "${MLP_S:-150}" $PY benchmarks/sweep_mlp.py --device cuda --workload $workload --K "${MLP_K:-1024}" \
    --epochs 20 --seq-configs 2 >> "$OUT/sweep_mlp.jsonl" 2>> "$OUT/sweep_mlp.err"
done
# Issue #22's digits CNN (target 6: at K=1024, 50x the torch loop), regfn vs the loop (JAX left out: its
# compile of the CNN sweep would take the time of the rest; CNN_JAX=1 adds it).
NO_JAX=$([ -n "${CNN_JAX:-}" ] || echo --no-jax)
timeout "${CNN_S:-180}" $PY benchmarks/sweep_cnn.py --device cuda --K "${CNN_K:-1024}" --epochs 10 --seq-configs 2 \
  --no-ensemble $NO_JAX > "$OUT/sweep_cnn.jsonl" 2> "$OUT/sweep_cnn.err"
# The NCCL path: one rank per GPU against one rank, the same rows bit for bit (NCCL takes one rank per GPU:
# a machine with one GPU cannot run it).
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "${NGPU:-0}" -ge 2 ]; then
  timeout "${NCCL_S:-120}" $PY benchmarks/sweep_distributed.py --device cuda --nproc "$NGPU" --K "${NCCL_K:-4096}" \
    --epochs 200 > "$OUT/distributed.jsonl" 2> "$OUT/distributed.err"
else
  echo "NCCL path not run: $NGPU GPU(s), NCCL needs one rank per GPU" > "$OUT/distributed.jsonl"
fi
timeout "${UNIFORM_S:-20}" $PY benchmarks/random_uniform.py --device cuda --sizes 1e6,1e8 > "$OUT/uniform.jsonl" 2> "$OUT/uniform.err"
timeout "${OPTIM_S:-30}" $PY benchmarks/optim_step.py --device cuda --repeats 3 > "$OUT/optim.jsonl" 2> "$OUT/optim.err"
echo "== tests"; cat "$OUT/tests.txt"
echo "== errors (tail)"; tail -n 5 "$OUT/sweep.err" "$OUT/uniform.err"
echo "== top kernels"; head -n 20 "$OUT/profile.txt" 2>/dev/null; cat "$OUT/big.txt" 2>/dev/null
echo "== uniform"; cat "$OUT/uniform.jsonl"
echo "== optimizer step (model, case, update+apply / step / step_ / compiled vs torch single)"
$PY - "$OUT/optim.jsonl" <<'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:  # a line cut by the timeout
        continue
    if "case" in r:
        print(r["model"], r["case"], r["eager_ratio"], r["step_ratio"], r["inplace_ratio"], r["compiled_ratio"])
PYEOF
echo "== sweep (K, regfn_s, jax_s, regfn/jax, seq/regfn, compile | triton_s, triton/jax, compile, rel diff, tiles)"
$PY - "$OUT/sweep.jsonl" <<'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        print(r["K"], r["regfn_s"], r["jax_s"], r["regfn_vs_jax"], r["seq_vs_regfn"], r["regfn_compile_s"], "|",
              r.get("triton_s"), r.get("triton_vs_jax"), r.get("triton_compile_s"), r.get("triton_loss_max_rel_diff"),
              r.get("triton_tiles_s"), r["device"])
PYEOF
echo "== sweep, linear=broadcast (K, regfn_s)"; cut -c1-120 "$OUT/sweep_broadcast.jsonl"
echo "== wider MLPs (sweep_mlp.py)"; cat "$OUT/sweep_mlp.jsonl" 2>/dev/null; tail -n 3 "$OUT/sweep_mlp.err" 2>/dev/null
echo "== digits CNN (sweep_cnn.py)"; cut -c1-400 "$OUT/sweep_cnn.jsonl" 2>/dev/null; tail -n 3 "$OUT/sweep_cnn.err" 2>/dev/null
echo "== NCCL (sweep_distributed.py)"; cut -c1-400 "$OUT/distributed.jsonl" 2>/dev/null; tail -n 3 "$OUT/distributed.err" 2>/dev/null
