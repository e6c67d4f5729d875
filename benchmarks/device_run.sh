#!/usr/bin/env bash
# What we send to the lent GPU machine (docs/kernels.md tells the runs). From the repo root there:
#   bash benchmarks/device_run.sh call1   # starts the mamba_ssm build (background, sm_90 only),
#                                         # tunes our kernels, gpu tests (tile), then the scan table
#                                         # (run 3 of docs/kernels.md)
#   bash benchmarks/device_run.sh run5    # session 3's single call: build in the background, lean
#                                         # backward configs, gpu tests, scan table, whole model
#   bash benchmarks/device_run.sh call2   # builds mamba_ssm again in the background (its wheels,
#                                         # 66 MB, are too big to carry), sweep, gpu tests, model
#                                         # (ours, ViT), torch.compile training smoke test, then
#                                         # the scan table and the official model
# Needs .devcarry/ (git-ignored): the mamba_ssm / causal_conv1d sdists and the official model code.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }

build_official() {  # sm_90 only; wheels in /tmp/wheels, then installed
  rm -rf /tmp/build /tmp/wheels && mkdir -p /tmp/build /tmp/wheels && cd /tmp/build || exit 1
  for f in "$1"/.devcarry/causal_conv1d-*.tar.gz "$1"/.devcarry/mamba_ssm-*.tar.gz; do tar xzf "$f"; done
  for d in causal_conv1d-* mamba_ssm-*; do
    python3 - "$d/setup.py" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
hook = "    # HACK: The compiler flag -D_GLIBCXX_USE_CXX11_ABI"
assert hook in s, p
s = s.replace(hook, "    cc_flag = [f for f in cc_flag if f.startswith('-D')] + ['-gencode', 'arch=compute_90,code=sm_90']\n" + hook, 1)
open(p, "w").write(s)
PY
  done
  export MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=14
  for d in causal_conv1d-* mamba_ssm-*; do
    (cd "$d" && python3 -m pip wheel -q --no-build-isolation --no-deps --no-index -w /tmp/wheels .) || exit 1
  done
  python3 -m pip install -q --no-deps --no-index /tmp/wheels/*.whl && touch /tmp/build.ok
}

best_configs() {  # the sweep's best configs, else the defaults
  export VIDEOMAMBA_TILE_CONFIG=$(python3 -c "import json;print(json.load(open('$1'))['sweep']['tile']['best'])" 2>/dev/null || echo 8,32,0)
  local bwd
  bwd=$(python3 -c "import json;print(json.load(open('$1'))['sweep']['bwd']['best'])" 2>/dev/null || echo 8,8/64,8,16,4096)
  export VIDEOMAMBA_TILE_BWD_CONFIG=${bwd%/*} VIDEOMAMBA_SEQ_CONFIG=${bwd#*/}
  echo "configs: tile $VIDEOMAMBA_TILE_CONFIG, tile bwd $VIDEOMAMBA_TILE_BWD_CONFIG, seq $VIDEOMAMBA_SEQ_CONFIG"
}

case "${1:-scan}" in
call1)
  { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.version.cuda)"; } | tee "$OUT/device.txt"
  (setsid bash "$0" build > /tmp/build.log 2>&1 &)
  timeout 200 python3 benchmarks/scan.py --sweep --backends triton --lengths 3137 --check-lengths 0 \
      --out "$OUT/scan_sweep.json" 2>&1 | grep -v "^{" | tail -16
  best_configs "$OUT/scan_sweep.json"
  echo "sweep done at $(elapsed)s"
  timeout 100 python3 -m pytest tests/ops/test_triton_scan.py -m gpu -q --tb=line -p no:cacheprovider \
      -k "tile_configs or (matches_ref and bf16) or (optional and tile)" > "$OUT/gpu_tests_call1.log" 2>&1
  echo "tests done at $(elapsed)s"; tail -3 "$OUT/gpu_tests_call1.log"
  while [ ! -f /tmp/build.ok ] && [ "$(elapsed)" -lt 400 ] && pgrep -f "device_run.sh build" >/dev/null; do sleep 5; done
  echo "build ok: $([ -f /tmp/build.ok ] && echo yes || echo no) at $(elapsed)s"; tail -3 /tmp/build.log
  BACKENDS=triton,triton_seq,torch,sdpa; [ -f /tmp/build.ok ] && BACKENDS=triton,triton_seq,mamba_ssm,torch,sdpa
  timeout $(( 520 - $(elapsed) )) python3 benchmarks/scan.py --backends $BACKENDS --out "$OUT/scan_call1.json" 2>&1 | tail -8
  if [ -f /tmp/build.ok ]; then
    (cd /tmp/wheels && ls -la && tar cf /tmp/wheels.tar *.whl && split -b 15m /tmp/wheels.tar "$OUT/wheels.tar.part")
  fi
  ;;
call2)  # one lease: sweep, gpu tests, model (ours, ViT), compile smoke test, then (build done)
        # the scan table and the official model; mamba_ssm builds in the background meanwhile
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.version.cuda)"
  (setsid bash "$0" build > /tmp/build.log 2>&1 &)
  [ -d .whl ] && python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/av-*.whl
  timeout 150 python3 benchmarks/scan.py --sweep --backends triton --lengths 3137 --check-lengths 0 \
      --out "$OUT/scan_sweep.json" 2>&1 | grep -v "^{" | tail -22
  best_configs "$OUT/scan_sweep.json"
  echo "sweep done at $(elapsed)s"
  timeout 100 python3 -m pytest tests/ops -m gpu -q --tb=line -p no:cacheprovider \
      -k "tile or bidir or inductor or opcheck or (matches_ref and (bf16 or 1000))" > "$OUT/gpu_tests.log" 2>&1
  echo "tests done at $(elapsed)s"; tail -4 "$OUT/gpu_tests.log"
  timeout 120 python3 benchmarks/model.py --models ours,vit_sdpa --out "$OUT/model.json" 2>&1 | tail -10
  echo "model done at $(elapsed)s"
  if [ -d /tmp/site/av ]; then
    timeout 100 env PYTHONPATH=$PYTHONPATH:/tmp/site bash -c 'python3 -m videomamba.cli synth motion --out /tmp/m --num 400 --frames 8 \
      && python3 -m videomamba.cli train configs/synthetic/motion.yaml --no-progress --output-dir /tmp/c \
      --set data.train=/tmp/m/train.csv data.val=/tmp/m/val.csv data.test=/tmp/m/test.csv \
      data.prefix=/tmp/m train.precision=bf16 train.compile=true schedule.epochs=1' > "$OUT/compile_smoke.log" 2>&1
    echo "compile smoke rc=$? at $(elapsed)s"; tail -3 "$OUT/compile_smoke.log"
  fi
  while [ ! -f /tmp/build.ok ] && [ "$(elapsed)" -lt 450 ] && pgrep -f "device_run.sh build" >/dev/null; do sleep 5; done
  echo "build ok: $([ -f /tmp/build.ok ] && echo yes || echo no) at $(elapsed)s"; tail -2 /tmp/build.log
  BACKENDS=triton,triton_seq,torch,sdpa; [ -f /tmp/build.ok ] && BACKENDS=triton,triton_seq,mamba_ssm,torch,sdpa
  timeout 100 python3 benchmarks/scan.py --backends $BACKENDS --torch-max-length 1569 \
      --out "$OUT/scan.json" 2>&1 | tail -7
  echo "scan done at $(elapsed)s"
  [ -f /tmp/build.ok ] && [ "$(elapsed)" -lt 540 ] && timeout $(( 588 - $(elapsed) )) python3 benchmarks/model.py \
      --models official --out "$OUT/model_official.json" 2>&1 | tail -9
  [ "$(elapsed)" -lt 560 ] && [ -d /tmp/site/av ] && PYTHONPATH=$PYTHONPATH:/tmp/site timeout $(( 592 - $(elapsed) )) \
      python3 benchmarks/search.py --device cuda --skip-query > "$OUT/search_gpu.json" 2>/dev/null
  ;;
run8)  # session 3, last call: the whole model (inference with the fused conv kernel, training)
       # beside the official model in one lease, with the full GPU test run while mamba_ssm builds.
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
  (setsid bash "$0" build > /tmp/build.log 2>&1 &)
  timeout 300 python3 -m pytest tests/ops -m gpu -q --tb=line -p no:cacheprovider \
      > "$OUT/gpu_tests.log" 2>&1
  echo "tests done at $(elapsed)s"; grep -E "FAILED|passed|failed" "$OUT/gpu_tests.log" | cut -c1-200 | tail -8
  while [ ! -f /tmp/build.ok ] && [ "$(elapsed)" -lt 440 ] && pgrep -f "device_run.sh build" >/dev/null; do sleep 5; done
  echo "build ok: $([ -f /tmp/build.ok ] && echo yes || echo no) at $(elapsed)s"; tail -2 /tmp/build.log
  MODELS=ours,vit_sdpa; [ -f /tmp/build.ok ] && MODELS=ours,official,vit_sdpa
  timeout $(( 590 - $(elapsed) )) python3 benchmarks/model.py --models $MODELS --frames 8,32 \
      --train-frames 8 --out "$OUT/model.json" > "$OUT/model.log" 2>&1; tail -9 "$OUT/model.log"
  ;;
run5)  # session 3, one call: build in the background; lean vs previous backward configs; gpu
       # tests; then (build done) the scan table beside the official kernel and the whole model
       # beside the official model. Every step has its own timeout and writes into $OUT as it goes.
  { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.version.cuda)"; } | tee "$OUT/device.txt"
  (setsid bash "$0" build > /tmp/build.log 2>&1 &)
  timeout 90 python3 benchmarks/scan.py --backends triton --lengths 1569 --check-lengths 0 \
      --bwd-check "lean:4,8,10,200,lean:4,8,12,168,lean:4,8,8,0,1,lean:4,8,0,0,lean_noatomics:4,8,10,200" \
      --bwd-check-lengths 1569 \
      --out "$OUT/scan_bwd_check.json" > "$OUT/scan_bwd_check.log" 2>&1
  grep -E "bwd |Error|error" "$OUT/scan_bwd_check.log" | cut -c1-220 | tail -12
  export VIDEOMAMBA_LEAN_BWD_CONFIG=$(python3 -c "import json;print(json.load(open('$OUT/scan_bwd_check.json'))['bwd_check']['best_lean'].split(':')[1])" 2>/dev/null || echo 4,8,10,200)
  echo "bwd check done at $(elapsed)s, lean config $VIDEOMAMBA_LEAN_BWD_CONFIG"
  timeout 120 python3 -m pytest tests/ops -m gpu -v --tb=line -p no:cacheprovider \
      -k "tile_backwards or bidir" > "$OUT/gpu_tests_1.log" 2>&1
  echo "tests 1 done at $(elapsed)s"; grep -E "FAILED|passed|failed" "$OUT/gpu_tests_1.log" | cut -c1-200 | tail -6
  timeout $(( 390 - $(elapsed) )) python3 -m pytest tests/ops -m gpu -v --tb=line -p no:cacheprovider \
      -k "(optional and tile) or inductor or (matches_ref and (bf16 or 1000)) or (tile_configs and rev)" \
      > "$OUT/gpu_tests_2.log" 2>&1
  echo "tests 2 done at $(elapsed)s"; grep -E "FAILED|passed|failed" "$OUT/gpu_tests_2.log" | cut -c1-200 | tail -8
  while [ ! -f /tmp/build.ok ] && [ "$(elapsed)" -lt 430 ] && pgrep -f "device_run.sh build" >/dev/null; do sleep 5; done
  echo "build ok: $([ -f /tmp/build.ok ] && echo yes || echo no) at $(elapsed)s"; tail -3 /tmp/build.log; cp /tmp/build.log "$OUT/build.log"
  BACKENDS=triton,triton_prev,sdpa; [ -f /tmp/build.ok ] && BACKENDS=triton,triton_prev,mamba_ssm,sdpa
  timeout 110 python3 benchmarks/scan.py --backends $BACKENDS --check-lengths 1569 \
      --out "$OUT/scan.json" > "$OUT/scan.log" 2>&1; tail -7 "$OUT/scan.log"
  echo "scan done at $(elapsed)s"
  [ "$(elapsed)" -lt 560 ] && timeout $(( 588 - $(elapsed) )) python3 benchmarks/model.py \
      --models ours,official,vit_sdpa --out "$OUT/model.json" > "$OUT/model.log" 2>&1; tail -12 "$OUT/model.log"
  ;;
build)
  build_official "$PWD"
  ;;
scan)
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/device.txt"
  python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.version.cuda)" | tee -a "$OUT/device.txt"
  (setsid bash "$0" build > /tmp/build.log 2>&1 &)
  timeout 170 python3 benchmarks/scan.py --sweep --backends triton --lengths 6273 --check-lengths 0 \
      --out "$OUT/scan_sweep.json" 2>&1 | tee "$OUT/scan_sweep.log" | tail -3
  python3 -c "import json;print(json.load(open('$OUT/scan_sweep.json'))['sweep']['best'])" > /tmp/best_seq \
      || echo "64,8,16,4096" > /tmp/best_seq
  export VIDEOMAMBA_SEQ_CONFIG=$(cat /tmp/best_seq)
  echo "sweep done at $(elapsed)s, best $VIDEOMAMBA_SEQ_CONFIG"
  timeout 170 python3 -m pytest tests/ops/test_triton_scan.py tests/ops/test_triton_bidir.py -m gpu -q \
      --tb=line -p no:cacheprovider > "$OUT/gpu_tests.log" 2>&1
  echo "tests done at $(elapsed)s"; tail -4 "$OUT/gpu_tests.log"
  timeout $(( 585 - $(elapsed) )) python3 benchmarks/model.py --models ours,vit_sdpa \
      --out "$OUT/model_ours.json" 2>&1 | tail -12
  ;;
final)
  export VIDEOMAMBA_SEQ_CONFIG=$(cat /tmp/best_seq 2>/dev/null || echo 64,8,16,4096)
  while [ ! -f /tmp/build.ok ] && [ "$(elapsed)" -lt 240 ] && pgrep -f "device_run.sh build" >/dev/null; do sleep 5; done
  echo "build ok: $([ -f /tmp/build.ok ] && echo yes || echo no) at $(elapsed)s"; tail -3 /tmp/build.log
  BACKENDS=triton,triton_chunk,torch,sdpa; [ -f /tmp/build.ok ] && BACKENDS=triton,triton_chunk,mamba_ssm,torch,sdpa
  timeout 240 python3 benchmarks/scan.py --backends $BACKENDS --out "$OUT/scan.json" 2>&1 | tail -9
  echo "scan done at $(elapsed)s"
  [ -f /tmp/build.ok ] && timeout $(( 590 - $(elapsed) )) python3 benchmarks/model.py \
      --models official --out "$OUT/model_official.json" 2>&1 | tail -12
  ;;
quick)  # what fits a few minutes: our kernels vs SDPA, reference check, gpu tests, model (ours, ViT)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
  timeout 100 python3 benchmarks/scan.py --backends triton,triton_chunk,sdpa --out "$OUT/scan.json" 2>&1 | tee "$OUT/scan.log" | tail -7
  echo "scan done at $(elapsed)s"
  timeout 60 python3 -m pytest tests/ops/test_triton_scan.py tests/ops/test_triton_bidir.py -m gpu -q \
      -k "(bf16 and all) or bidirectional or (rev and seq)" --tb=line -p no:cacheprovider > "$OUT/gpu_tests.log" 2>&1
  echo "tests done at $(elapsed)s"; tail -3 "$OUT/gpu_tests.log"
  timeout $(( ${QUICK_LIMIT:-230} - $(elapsed) )) python3 benchmarks/model.py --models ours,vit_sdpa \
      --out "$OUT/model.json" 2>&1 | tail -12
  ;;
esac
echo "total $(elapsed)s"
