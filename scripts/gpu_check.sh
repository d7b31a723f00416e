#!/bin/bash
# The real-GPU path on one CUDA machine, end to end on the tiny toy world (about 3 minutes on an H100):
# rmteach evaluate in bf16 and fp32, rmteach train with RLOO and GRPO (bf16 autocast, checkpoints,
# TensorBoard), and the same train under `accelerate launch`. Run from the repository root:
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
echo "gpu check: $fails step(s) failed"
exit $((fails > 0))
