#!/usr/bin/env bash
# GPU check: the `gpu` tests and the side-by-side benchmarks (DPO, SFT, RM, generation) on one CUDA
# GPU, in under 8 minutes, on an offline machine prepared as in docs/gpu.md (wheels in .gpu/whl,
# tokenizer files in .gpu/tok; random-init models of the SmolLM2-135M and -1.7B shapes are built
# here). Prints the tables; logs, JSON and Markdown go to $OUT (default ./gpu-check-out).
#
#   bash scripts/gpu_check.sh                          # everything
#   GPU_CHECK_PARTS=train,gen bash scripts/gpu_check.sh   # some parts: tests, train, gen, gen_peaked, real
#   GEN_OPTIONS=selfalign:256,hf-generate:256 ...       # fewer generation options (benchmarks.gen_options)
#
# Each part runs under its own time limit, so a slow or failing part never takes the others down;
# the exit status is non-zero when any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
T0=$SECONDS
PARTS=${GPU_CHECK_PARTS:-tests,train,gen,gen_peaked,real}
status=0
log() { echo "[gpu_check $((SECONDS - T0)) s] $*" | tee -a "$OUT/progress.log"; }
part() {  # part NAME SECONDS CMD... : run with a time limit, keep the log, remember failures
  local name=$1 limit=$2; shift 2
  log "start $name (limit ${limit} s)"
  timeout "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1
  local rc=$?
  [ $rc -ne 0 ] && status=1
  log "end $name: exit $rc"
}

# shellcheck source=scripts/gpu_setup.sh
source scripts/gpu_setup.sh > >(tee "$OUT/setup.log") 2>&1 || { log "setup failed"; exit 1; }
export SELFALIGN_HOME=${SELFALIGN_HOME:-/tmp/selfalign-home} SELFALIGN_NO_PROGRESS=1 TOKENIZERS_PARALLELISM=false
# the tests' tiny models take the tokenizer of the registry model: the random 135M-shape folder serves
mkdir -p "$SELFALIGN_HOME/models"
[ -e "$SELFALIGN_HOME/models/smollm2-135m" ] || ln -s /tmp/m135 "$SELFALIGN_HOME/models/smollm2-135m"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

has() { [[ ",$PARTS," == *",$1,"* ]]; }
has tests && part gpu_tests 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
# generation, 64 prompts × 4 samples × 128 tokens, every option on one loaded model: selfalign's engine
# (64 / 256 rows), the engine through transformers' generate, transformers' batched generate (64 / 256
# rows), one generate call per prompt (on 8 prompts: a rate), transformers' continuous batching; on the
# random-init model (nearly uniform next-token distributions) and on a peaked one (logits × 5)
B="python3 -m benchmarks.run --device cuda --model /tmp/m17 --workdir /tmp/bench17"
G="python3 -m benchmarks.gen_options --device cuda ${GEN_OPTIONS:+--options $GEN_OPTIONS}"
has gen && part gen_options 200 $G --model /tmp/m17 --json "$OUT/gen_options.json"
if has gen_peaked; then
  [ -f /tmp/m17p/config.json ] || python3 scripts/make_random_model.py .gpu/tok /tmp/m17p 1.7b --logit-scale 5
  part gen_options_peaked 200 $G --model /tmp/m17p --json "$OUT/gen_options_peaked.json"
fi
# 1.7B shape, bf16; 5 optimizer steps of batch 8 (the mean leaves out step 1)
has train && part bench_train 240 $B --full --steps 5 --workloads "${TRAIN_WORKLOADS:-dpo,sft,rm}" --json "$OUT/bench_train.json" \
  --markdown "$OUT/bench_train.md"
if has real && [ $((SECONDS - T0)) -lt 380 ]; then
  part bench_real 80 $B --real --steps 4 --workloads dpo --json "$OUT/bench_real.json" --markdown "$OUT/bench_real.md"
elif has real; then
  log "skipped bench_real (batch 16 × 512 tokens): out of the 8-minute budget"
fi
log "done in $((SECONDS - T0)) s, status $status"
for f in "$OUT"/bench_*.md; do [ -f "$f" ] && { echo "== $f"; cat "$f"; }; done
grep -H "tok/s" "$OUT"/gen_options*.log 2>/dev/null
exit $status
