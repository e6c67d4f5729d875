#!/usr/bin/env bash
# The multi-GPU check of issue 4, run on a lent 2-GPU machine from the repo root:
#   bash scripts/device_ddp.sh        (needs .whl/av-*.whl for Python 3.12; results in $OUT)
# DDP over NCCL on the synthetic motion recipe, the same under FSDP, a SIGKILL of the whole
# torchrun job mid-epoch followed by --resume auto, and one GPU with torch.compile.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/av-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
START=$(date +%s); elapsed() { echo $(( $(date +%s) - START )); }
nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version())" | tee -a "$OUT/device.txt"
python3 -m videomamba.cli synth motion --out /tmp/motion --num 4000 --frames 8 --val-fraction 0.075 | tail -2
echo "data at $(elapsed)s"
R=configs/synthetic/motion.yaml
SET="data.train=/tmp/motion/train.csv data.val=/tmp/motion/val.csv data.test=/tmp/motion/test.csv
     data.prefix=/tmp/motion data.num_workers=4 train.precision=bf16 train.eval_every_epochs=4"
train() { python3 -m videomamba.cli train "$R" --no-progress "$@"; }
ddp() { torchrun --standalone --nproc_per_node=2 -m videomamba.cli train "$R" --no-progress "$@"; }

ddp --output-dir /tmp/ddp --set $SET > "$OUT/ddp.log" 2>&1; echo "ddp rc=$? at $(elapsed)s"
ddp --output-dir /tmp/fsdp --set $SET train.distributed=fsdp schedule.epochs=4 > "$OUT/fsdp.log" 2>&1
echo "fsdp rc=$? at $(elapsed)s"
setsid torchrun --standalone --nproc_per_node=2 -m videomamba.cli train "$R" --no-progress \
    --output-dir /tmp/kill --save-every-steps 40 --set $SET schedule.epochs=4 > "$OUT/kill_1.log" 2>&1 &
KPID=$!
# kill once a mid-epoch checkpoint exists and step 150+ was logged (an epoch is 125 steps)
for _ in $(seq 240); do sleep 0.5; [ -f /tmp/kill/last.pt ] && grep -q '"step": 1[5-9][0-9]' /tmp/kill/log.jsonl 2>/dev/null && break; done
kill -9 -- -"$KPID" 2>/dev/null; sleep 3
echo "killed at $(elapsed)s; last logged: $(tail -1 /tmp/kill/log.jsonl 2>/dev/null | cut -c1-160)"
ddp --output-dir /tmp/kill --resume auto --set $SET schedule.epochs=4 > "$OUT/kill_2.log" 2>&1
echo "resume rc=$? at $(elapsed)s"
train --output-dir /tmp/compile --set $SET train.compile=true schedule.epochs=4 > "$OUT/compile.log" 2>&1
echo "compile rc=$? at $(elapsed)s"
for d in ddp fsdp kill compile; do
  echo "== $d: $(ls /tmp/$d | tr '\n' ' ')"; ls /tmp/$d/tb 2>/dev/null | head -2
  cp /tmp/$d/log.jsonl "$OUT/${d}_log.jsonl" 2>/dev/null
done
tail -n 3 "$OUT"/*.log
echo "total $(elapsed)s"
