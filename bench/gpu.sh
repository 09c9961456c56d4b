#!/usr/bin/env bash
# The papers' regime on one GPU, in one command with a wall-clock budget (default 480 s, an H100's
# 8 minutes, compilation included):
#
#   bash bench/gpu_wheels.sh            # first, on a machine with network and ../shared/data
#   bash bench/gpu.sh [--smoke] [--budget=SECONDS] [--epochs=N]
#
# (a) Timings, one after the other on an otherwise idle device, at the sizes of their issues:
#     bench/train_throughput.py (WRN-28-2 and WRN-28-10, batch 128, 50 timed steps),
#     bench/ops_throughput.py (1,024 images at 32 px, 128 at 224 px; median of 3 runs instead of 5)
#     and bench/step_cost.py (WRN-28-2, batch 128; variants astn, astn_inner4 and pvae only, no
#     measured floor: each further variant is one more compilation).
# (b) Reduced CIFAR-10 (the 4,000 training images `--config.reduced=4000 --config.data_seed=0`
#     selects, packed with the 10,000 test images by bench/gpu_wheels.sh), WRN-28-2, batch 128,
#     configs/online_augment.py's settings (Cutout 16, SGD 0.1 cosine, A-STN inner_num 4), seed 0:
#     Cutout, AutoAugment, A-STN and AutoAugment + A-STN, the four as parallel processes sharing the
#     GPU (a quarter of its memory each), so their compilations overlap on the CPU cores.
#
# Why not 200 epochs: 200 epochs of 4,000 images is 6,250 steps per arm, and an A-STN iteration
# with inner_num 4 costs about 9 plain steps (bench/step_cost.py's floor), so the four arms cost
# about 2 x 1.3 + 2 x 9 = 21 plain steps per iteration: 130,000 plain WRN-28-2 steps, about 26 min
# at an assumed 12 ms per step. So the epoch count comes from the budget left after (a): the
# plain step time measured by train_throughput.py and the A-STN cost measured by step_cost.py
# give the seconds per epoch of all four arms (run as if one after the other, times 1.3 for
# safety, plus evaluation), and the epochs are what fits after the compilations (3/4 of
# step_cost.py's wall time, at least 90 s), at most 200. --epochs=N overrides it. The schedule (cosine) spans the chosen epochs, so every arm ends
# annealed; a run that still overruns is stopped by SIGTERM (the trainer saves its summary).
#
# --smoke: tiny sizes for a CPU (WRN-10-1, batch 16/32, 1 timed step, 100 training images,
# 1 epoch), to test this script without a GPU.
#
# Results: $OUT (the device machine's output folder) if set, else bench/.gpu_local/run: one log per
# part, the arms' workdirs, and gpu_summary.json (device, timings' RESULT fields, each arm's
# summary, the plan) with the RESULT lines also in gpu_summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0 BUDGET="" EPOCHS=""
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    --budget=*) BUDGET=${arg#*=} ;;
    --epochs=*) EPOCHS=${arg#*=} ;;
    *) echo "bench/gpu.sh: unknown argument $arg (expected --smoke, --budget=S, --epochs=N)" >&2
       exit 2 ;;
  esac
done
BUDGET=${BUDGET:-$([ $SMOKE = 1 ] && echo 900 || echo 480)}
PY=${PYTHON:-$(python3 -c "import jax" 2>/dev/null && echo python3 || echo python)}
CARRY=$ROOT/bench/.carry
DATA=$CARRY/cifar10-4000.zip
# Outside bench/.carry, which is what travels (64 MiB at most): the decoded cache alone is 43 MB.
LOCAL=$ROOT/bench/.gpu_local
RESULTS=${OUT:-$LOCAL/run}
mkdir -p "$RESULTS"
export PYTHONPATH=$ROOT:$LOCAL/site JAXAUG_CACHE_DIR=$LOCAL/cache
left() { echo $((BUDGET - SECONDS)); }

# The machine lacks ml_collections (and has no network): install the carried wheel beside the code.
if ! "$PY" -c "import ml_collections" 2>/dev/null; then
  # A pure-Python wheel is a zip of the package: without pip, unpacking it is the install.
  "$PY" -m pip install --quiet --no-index --no-deps --find-links "$CARRY/wheels" \
      --target "$LOCAL/site" ml-collections ||
    "$PY" -m zipfile -e "$(ls "$CARRY"/wheels/ml_collections-*.whl | tail -1)" "$LOCAL/site" ||
    exit 1
fi
if [ ! -f "$DATA" ]; then
  echo "bench/gpu.sh: $DATA is missing; run bash bench/gpu_wheels.sh first" >&2
  exit 1
fi
# Decode the zip once into the cache, so the four arms do not each decode it.
DEVICE=$("$PY" -c "
import jax
from jaxaug.data import load_dataset
load_dataset('imagefolder:$DATA')
d = jax.devices()[0]
print(f'{jax.device_count()} x {d.device_kind} ({d.platform})')" 2>"$RESULTS/setup.log") || {
  cat "$RESULTS/setup.log" >&2; exit 1; }
echo "device: $DEVICE; budget ${BUDGET} s; results in $RESULTS"

# (a) the timings, each capped at a share of the budget.
if [ $SMOKE = 1 ]; then
  TT_ARGS=(--models=wrn-10-1,wrn-16-1 --batch_size=16 --steps=1)
  OPS_ARGS=(--quick --images_zip="$DATA")
  SC_ARGS=(--quick --variants=astn_inner4 --measured_floor=false)
else
  TT_ARGS=()
  OPS_ARGS=(--repeats=3 --images_zip="$DATA")
  SC_ARGS=(--variants=astn,astn_inner4,pvae --measured_floor=false)
fi
bench() {  # name, cap in % of the budget, arguments
  local name=$1 cap=$(($2 * BUDGET / 100)) t0=$SECONDS
  shift 2
  echo "== bench/$name.py $* (cap ${cap} s)"
  timeout -s TERM --kill-after=10 "$cap" "$PY" "bench/$name.py" "$@" >"$RESULTS/$name.log" 2>&1
  echo "   exit $?, $((SECONDS - t0)) s: $(grep '^RESULT' "$RESULTS/$name.log" | tail -1)"
  echo "$((SECONDS - t0))" >"$RESULTS/$name.seconds"
}
bench train_throughput 15 "${TT_ARGS[@]}"
bench ops_throughput 15 "${OPS_ARGS[@]}"
bench step_cost 20 "${SC_ARGS[@]}"

# (b) the four arms in parallel.
TRAIN_S=$(($(left) - 20))  # 20 s kept for the summary
[ "$TRAIN_S" -lt 10 ] && TRAIN_S=10  # never `timeout 0`, which means no limit
if [ $SMOKE = 1 ]; then
  EPOCHS=${EPOCHS:-1}
  ARM_ARGS=(--config.model=wrn-10-1 --config.reduced=100 --config.batch_size=32)
  PLAN="smoke: $EPOCHS epoch(s)"
else
  ARM_ARGS=(--config.model=wrn-28-2 --config.reduced=0)
  read -r PLANNED PLAN < <("$PY" - "$RESULTS" "$TRAIN_S" <<'EOF'
import re, sys
results, train_s = sys.argv[1], float(sys.argv[2])

def field(log, key):
    try:
        lines = [l for l in open(f"{results}/{log}.log") if l.startswith("RESULT ")]
        return float(re.search(rf"\b{key}=([0-9.]+)", lines[-1]).group(1))
    except (OSError, IndexError, AttributeError, ValueError):
        return None

img_s, astn = field("train_throughput", "wrn_28_2_img_s"), field("step_cost", "astn_inner4")
if img_s is None or astn is None:
    print(10, "no timings (train_throughput or step_cost failed): 10 epochs, a guess")
    sys.exit()
# step_cost.py's run is mostly four compilations one after the other (baseline, astn, astn_inner4,
# pvae); the four arms compile at once on the same cores, about as much work.
compile_s = max(90.0, 0.75 * float(open(f"{results}/step_cost.seconds").read()))
step = 128 / img_s                       # a plain WRN-28-2 step at batch 128
iteration = 2 * 1.3 * step + 2 * 9 * astn * step   # Cutout, AA (+30 %), A-STN x2 (floor 9)
evaluation = 4 * 10000 / 128 * step / 3  # four arms' test passes, a forward ~1/3 of a step
epoch_s = 1.3 * (4000 / 128 * iteration + evaluation)
epochs = int(max(1, min(200, (train_s - compile_s) // epoch_s)))
print(epochs, f"{epochs} epochs: {epoch_s:.1f} s per epoch of all four arms (plain step "
      f"{step * 1e3:.1f} ms, A-STN inner 4 = {9 * astn:.2f} steps), {train_s:.0f} s left, "
      f"{compile_s:.0f} s of it kept for compilation")
EOF
)
  EPOCHS=${EPOCHS:-$PLANNED}
  [ "$EPOCHS" != "$PLANNED" ] && PLAN="--epochs=$EPOCHS given (the budget suggested $PLAN)"
fi
echo "== reduced CIFAR-10, $EPOCHS epochs, 4 arms in parallel (cap ${TRAIN_S} s): $PLAN"
declare -A ARMS=([cutout]="rcifar10,none" [autoaugment]="rcifar10,none,aa"
                 [astn]="rcifar10,astn" [aa_astn]="rcifar10,astn,aa")
PIDS=()
T0=$SECONDS
for arm in cutout autoaugment astn aa_astn; do
  rm -rf "${RESULTS:?}/$arm"
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.22 timeout -s TERM --kill-after=30 "$TRAIN_S" \
    "$PY" train.py --config="configs/online_augment.py:${ARMS[$arm]}" \
      --config.dataset="imagefolder:$DATA" "${ARM_ARGS[@]}" --config.epochs="$EPOCHS" \
      --config.checkpoint.enabled=False --config.save_image_grid=False \
      --workdir="$RESULTS/$arm" >"$RESULTS/train_$arm.log" 2>&1 &
  PIDS+=($!)
done
for pid in "${PIDS[@]}"; do wait "$pid"; done
echo "   arms done in $((SECONDS - T0)) s"

"$PY" - "$RESULTS" "$DEVICE" "$EPOCHS" "$PLAN" "$BUDGET" "$SECONDS" "$SMOKE" <<'EOF'
import json, os, sys
results, device, epochs, plan, budget, elapsed, smoke = sys.argv[1:]
summary = {"device": device, "smoke": smoke == "1", "budget_s": int(budget),
           "elapsed_s_before_summary": int(elapsed), "epochs": int(epochs), "plan": plan,
           "timings": {}, "arms": {}}
lines = []
for name in ("train_throughput", "ops_throughput", "step_cost"):
    try:
        found = [l.strip() for l in open(f"{results}/{name}.log") if l.startswith("RESULT ")]
    except OSError:
        found = []
    summary["timings"][name] = dict(f.split("=", 1) for f in found[-1].split()[1:]) if found else None
    lines.append(f"{name}: {found[-1] if found else 'no RESULT line'}")
for arm in ("cutout", "autoaugment", "astn", "aa_astn"):
    path = f"{results}/{arm}/summary.json"
    arm_summary = json.load(open(path)) if os.path.exists(path) else None
    summary["arms"][arm] = arm_summary
    if arm_summary is None:
        lines.append(f"{arm}: no summary.json (see train_{arm}.log)")
    else:
        lines.append(
            f"{arm}: last_test_accuracy={arm_summary.get('last_test_accuracy')} "
            f"best_test_accuracy={arm_summary.get('best_test_accuracy')} "
            f"epochs_completed={arm_summary['epochs_completed']} "
            f"interrupted={arm_summary['interrupted']} wall_s={arm_summary['wall_time_s']:.0f} "
            f"train_img_s={arm_summary['train_images_per_s'] or 0:.0f}")
def write(path, text):  # a temporary file renamed: never a half-written summary
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
write(f"{results}/gpu_summary.json", json.dumps(summary, indent=1))
write(f"{results}/gpu_summary.txt",
      f"device: {device}; epochs: {epochs} ({plan})\n" + "\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "total ${SECONDS} s; summary: $RESULTS/gpu_summary.json"
