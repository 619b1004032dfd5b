#!/usr/bin/env bash
# Trains the models that ship with genseq, measures them on their test splits and exports them
# into genseq/pretrained/. Each model's exact command is here; the results land in results/.
#
#   bash recipes/models/run.sh                 # all shipped models (about 25 CPU minutes each)
#   bash recipes/models/run.sh poems verse     # some of them
#   bash recipes/models/run.sh --quick         # the same pipeline on tiny budgets (the tests run it)
#   bash recipes/models/run.sh speech piano sprites   # the frame models: these need a CUDA GPU
#                                                     # (piano's second stage runs on the CPU)
#   bash recipes/models/run.sh speech-fast piano-fast  # cheaper audio candidates (CUDA), scored only
#
# Baselines for the VAE tables (a language model of the decoder's size, the VAE with Bowman's
# plain settings) are the *-lm and *-bowman targets; poems-fb0.5 and poems-fb1.0 trace the
# trade-off between the KL kept in the code, likelihood and reconstruction at Bowman's budget.
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) targets+=("$arg") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(shakespeare poems verse)

if [ "$quick" = 1 ]; then
  runs=$(mktemp -d); results="$runs/results"; export_dir=""
  trap 'rm -rf "$runs"' EXIT
  budget() { echo "--steps 6 --valid-every 3"; }
  gpu_budget() { echo "--steps 4 --valid-every 2"; }
  cpu_minutes() { echo "--steps 4 --valid-every 2"; }
  cpu_steps() { echo "--steps 4 --valid-every 2"; }
  frame() { echo "--hidden 32 --embed 8"; }
  size() { echo "--hidden 32 --embed 16 --vocab-size 200"; }
  poems_budget() { budget; }
  iw=5; limit=50; refit_steps=2
else
  runs=runs; results=recipes/models/results; export_dir=genseq/pretrained
  budget() { echo "--steps $1 --valid-every 250"; }
  # audio and sprites were trained on one H100, 7.2 minutes each, side by side (see README)
  gpu_budget() { echo "--minutes 7.2 --device cuda --batch-size 64 --valid-every $1"; }
  poems_budget() { echo "--minutes 6.5 --device cuda --valid-every 1000"; }  # the recipe's --batch-size 128
  cpu_minutes() { echo "--minutes $1 --device cpu --valid-every $2"; }
  cpu_steps() { echo "--steps $1 --device cpu --valid-every $2"; }  # a CPU run's steps, replayed
  frame() { :; }
  size() { echo "$@"; }
  iw=100; limit=500  # IW-NLL costs iw decoder passes per line: 100 x 500 lines fits a CPU
  refit_steps=1000
fi
mkdir -p "$runs" "$results"

poems=corpora/poems/wuyan
verse=corpora/shakespeare/lines
# --refit-steps 0: these figures were measured without the final encoder refit (poems refits apart)
# every setting given, so that genseq.sizing chooses nothing for these runs
vae_recipe="--latent 32 --free-bits 1.0 --word-dropout 0.25 --kl-schedule cyclical --batch-size 128 --lr 2e-3 --kl-anneal-steps 1000 --refit-steps 0"
bowman="--latent 32 --free-bits 0 --word-dropout 0.25 --kl-schedule logistic --kl-anneal-steps 2000 --batch-size 128 --lr 2e-3 --refit-steps 0"

train_and_measure() {  # name task corpus-dir steps size-and-options...
  local name=$1 task=$2 corpus=$3 steps=$4; shift 4
  local train=$corpus/train.txt valid=$corpus/valid.txt test=$corpus/test.txt
  [ -f "$train" ] || train=$corpus.txt
  if [ -d "$corpus/train" ]; then train=$corpus/train valid=$corpus/valid test=$corpus/test; fi  # audio, images
  rm -rf "$runs/$name"
  local budget_args=$(budget "$steps")
  [ "$steps" != 0 ] || budget_args=""  # the budget is in the target's own options
  # shellcheck disable=SC2046,SC2086
  genseq train "$task" "$train" --valid "$valid" -o "$runs/$name" $budget_args "$@" --quiet
  local model=$runs/$name
  [ ! -f "$model/best.pt" ] || [ "$task" = vae ] || model=$model/best.pt  # frame models overfit: best
  measure "$name" "$task" "$test" "$model"
}

measure() {  # name task test-split model
  local subset=(--limit "$limit")  # the VAE tables compare models on the same first test lines
  [ "$2" = vae ] || subset=()
  genseq eval "$3" -m "$4" --json --iw-samples "$iw" "${subset[@]}" > "$results/$1.json"
  echo "$1: $(cat "$results/$1.json")"
}

export_model() {  # name precision [file in the run folder [export options]]
  [ -z "$export_dir" ] || genseq export "$runs/$1/${3:-model.pt}" "$export_dir/$1.pt" --precision "$2" "${@:4}"
}

for target in "${targets[@]}"; do
  case "$target" in
    shakespeare)  # two stages on the CPU. (1) 4,013 steps in independent windows of 128 tokens; (2)
                  # that model, as float16, fine-tuned in lanes of 16 windows that carry the state
                  # (--carry: bench/text_drift.py), 3,890 steps at lr 1e-3, 40 minutes on one thread
      # --precision float32: as the shipped models trained (a CPU with native bf16 would choose bf16)
      train_and_measure shakespeare-windows lm corpora/shakespeare 4013 \
        $(size --hidden 384 --layers 2 --embed 256 --dropout 0.25 --vocab-size 2000) --precision float32
      genseq export "$runs/shakespeare-windows/model.pt" "$runs/shakespeare-windows/float16.pt" --precision float16
      train_and_measure shakespeare lm corpora/shakespeare 3890 --init "$runs/shakespeare-windows/float16.pt" \
        --carry 16 --lr 1e-3 --precision float32
      export_model shakespeare float16 ;;
    poems)  # on one H200 beside three other runs: 40,814 steps in 6.5 minutes (a CPU thread: about
            # 7,000 steps an hour); free bits 2 nats per dimension, then the encoder refitted on the
            # CPU, 1,000 steps, from the int8 copy that came back from the GPU
      train_and_measure poems vae $poems 0 $(poems_budget) $(size --hidden 512 --embed 256 --vocab-size 4000) \
        $vae_recipe --free-bits 2.0 --refit-steps 0
      mv "$results/poems.json" "$results/poems-before-refit.json"
      genseq export "$runs/poems/model.pt" "$runs/poems/trained-int8.pt" --precision int8
      genseq refit $poems/train.txt -m "$runs/poems/trained-int8.pt" -o "$runs/poems/refit.pt" \
        --steps "$refit_steps" --valid $poems/valid.txt --quiet
      measure poems vae $poems/test.txt "$runs/poems/refit.pt"
      export_model poems int8 refit.pt ;;
    poems-lm)
      train_and_measure poems-lm lm $poems 4000 \
        $(size --hidden 512 --embed 256 --vocab-size 4000 --layers 1 --seq-len 64) --tokenizer char --precision float32 ;;
    poems-bowman)
      train_and_measure poems-bowman vae $poems 2576 $(size --hidden 512 --embed 256 --vocab-size 4000) $bowman ;;
    poems-fb0.5|poems-fb1.0)  # the trade-off curve: Bowman's step budget, free bits 0.5 and 1.0
      train_and_measure "$target" vae $poems 2576 $(size --hidden 512 --embed 256 --vocab-size 4000) \
        $vae_recipe --free-bits "${target#poems-fb}" ;;
    verse)  # the CPU rule for a sentence VAE (genseq.sizing chooses every setting: 256 units, a 128-dim
            # code, spliced lines, free bits 1, word dropout 0.3, 1,000 pieces ...): 45,971 steps and a
            # 4,597-step fit of the proposal, which --minutes 100 fixed on one CPU thread beside other
            # runs (validating every 2,500 steps, and once at step 20 for the budget's calibration,
            # which --steps skips)
      # shellcheck disable=SC2046
      OMP_NUM_THREADS=1 train_and_measure verse vae $verse 0 $(cpu_steps 45971 2500) $(size)
      export_model verse int8 ;;
    verse-code32)  # the verse shipped until 2026-12-02 (later that day): the rule as it was then, a
                   # 32-dim code, no spliced lines and a floor of 4 nats; 55,730 steps and a
                   # 5,573-step fit of the proposal (--minutes 95 on one thread)
      # shellcheck disable=SC2046
      OMP_NUM_THREADS=1 train_and_measure verse-code32 vae $verse 0 $(cpu_steps 55730 2500) $(size) \
        --latent 32 --splice 0 --free-bits 4 ;;
    verse-lm)
      train_and_measure verse-lm lm $verse 4000 \
        $(size --hidden 512 --embed 256 --vocab-size 2000 --layers 1 --seq-len 64) --precision float32 ;;
    verse-lm256)  # an LM of the size the CPU rule gives the VAE's decoder (256 units, 1,000 pieces)
      train_and_measure verse-lm256 lm $verse 4000 \
        $(size --hidden 256 --embed 128 --vocab-size 1000 --layers 1 --seq-len 64) --precision float32 ;;
    verse-bowman)
      train_and_measure verse-bowman vae $verse 2000 $(size --hidden 512 --embed 256 --vocab-size 2000) $bowman ;;
    speech)  # 4,864 steps in 7.2 minutes; the best validation, at step 4,500, is shipped
      train_and_measure speech lm corpora/audio/speech 0 $(gpu_budget 500) $(frame)
      export_model speech float16 best.pt ;;
    speech-gru)  # the plain sample-level baseline, same budget (1,137 steps)
      train_and_measure speech-gru lm corpora/audio/speech 0 $(gpu_budget 500) --arch rnn \
        $(size --hidden 512 --layers 1 --embed 64) ;;
    speech-fast|piano-fast)  # a frame tier of 256 units over 32 samples: x1.28-1.40 the shipped
      # size's sampling speed for 8 takes on 2 cores (bench/frame_sizes.py); candidates, scored
      # but not exported until a GPU run scores them beside the shipped models
      train_and_measure "$target" lm "corpora/audio/${target%-fast}" 0 $(gpu_budget 500) --hidden 256 --frame 32 $(frame) ;;
    piano)  # three stages. (1) 4,855 steps in 7.2 minutes on one H100 on the committed chorales, in
            # independent windows; (2) that model, as float16, fine-tuned on all 350 chorales (build.py
            # --full needs fluidsynth and music21) in lanes of 128 windows that carry the state
            # (--carry: bench/state_drift.py), 10,635 steps in 105 minutes on one CPU thread; (3) its
            # best.pt (the last step), as float16, fine-tuned the same way 8,757 more steps at lr 3e-4
            # (about 110 minutes on one CPU thread beside other runs); best.pt is the last step
      train_and_measure piano-windows lm corpora/audio/piano 0 $(gpu_budget 500) $(frame)
      genseq export "$runs/piano-windows/best.pt" "$runs/piano-windows/float16.pt" --precision float16
      piano_train=corpora/audio/piano/train  # quick mode: the committed chorales
      if [ "$quick" = 0 ]; then
        python corpora/audio/piano/build.py --full --out "$runs/piano-corpus"
        piano_train=$runs/piano-corpus/train
      fi
      rm -rf "$runs/piano-lanes" "$runs/piano"
      # shellcheck disable=SC2046
      OMP_NUM_THREADS=1 genseq train lm "$piano_train" --valid corpora/audio/piano/valid -o "$runs/piano-lanes" \
        --init "$runs/piano-windows/float16.pt" --carry 128 --seq-len 1024 --batch-size 32 --lr 5e-4 \
        $(cpu_minutes 105 250) --quiet
      genseq export "$runs/piano-lanes/best.pt" "$runs/piano-lanes/float16.pt" --precision float16
      # shellcheck disable=SC2046
      OMP_NUM_THREADS=1 genseq train lm "$piano_train" --valid corpora/audio/piano/valid -o "$runs/piano" \
        --init "$runs/piano-lanes/float16.pt" --carry 128 --seq-len 1024 --batch-size 32 --lr 3e-4 \
        $(budget 8757) --device cpu --quiet
      measure piano lm corpora/audio/piano/test "$runs/piano/best.pt"
      export_model piano float16 best.pt --temperature 0.9 ;;  # its own sampling (bench/audio_quality.py)
    sprites)  # 7,910 steps in 7.2 minutes; the best validation, at step 750, is shipped
      train_and_measure sprites lm corpora/sprites/creatures 0 $(gpu_budget 250) --hidden 512 --dropout 0.2 $(frame)
      export_model sprites float16 best.pt ;;
    sprites-vae)  # the convolutional image VAE, 32 x 32, the full 167-colour palette, ten code
                  # dimensions; one CPU thread, 30 minutes (the last tenth refits the encoder)
      OMP_NUM_THREADS=1 train_and_measure sprites-vae vae corpora/sprites/creatures 0 $(cpu_minutes 30 500) \
        --latent 10 $(size --hidden 32) --dropout 0.2 --batch-size 32 --lr 2e-3 --ema 0.999
      export_model sprites-vae float16 ;;
    *) echo "unknown target $target; choose from shakespeare poems poems-lm poems-bowman poems-fb0.5" \
            "poems-fb1.0 verse verse-code32 verse-lm verse-lm256 verse-bowman speech speech-gru speech-fast piano piano-fast sprites sprites-vae" >&2
       exit 2 ;;
  esac
done
