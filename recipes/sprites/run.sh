#!/usr/bin/env bash
# Sprites, pixel by pixel: corpus -> palette -> train -> held-out score -> samples and completions.
#
#   bash recipes/sprites/run.sh                  # the creatures corpus, the shipped model's recipe
#   bash recipes/sprites/run.sh --quick          # the same stages on tiny budgets (about a minute)
#   bash recipes/sprites/run.sh --stage 3        # start at a stage (1 corpus, 2 train, 3 score, 4 pictures)
#   LECTURE=../shared/benchmarks/pokemon-lecture bash recipes/sprites/run.sh --lecture
#                                                # the lecture benchmark: first 712 Pokemon train, last 80 test,
#                                                # a pixel LM (runs/lecture) and an image VAE (runs/lecture-vae)
#
# Outputs go to runs/sprites (or a temporary folder with --quick): model.pt, best.pt (the weights at
# the best validation score, which is what is shipped and scored), metrics.jsonl, test.json,
# samples.png and completions.png.
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=0; stage=1; lecture=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --stage) stage=$2; shift ;;
    --lecture) lecture=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

corpus=corpora/sprites/creatures
if [ "$quick" = 1 ]; then
  scratch=$(mktemp -d); run=$scratch/sprites; trap 'rm -rf "$scratch"' EXIT
  train_args=(--steps 6 --valid-every 3 --batch-size 8 --palette 16 --size 16x16 --hidden 32 --embed 8)
  count=8
else
  run=runs/sprites
  # the shipped model: 7.2 minutes on one H100 (7,910 steps), best validation at step 750;
  # on a CPU, --steps 1000 reaches about the same point
  train_args=(--minutes 7.2 --batch-size 64 --valid-every 250 --hidden 512 --dropout 0.2)  # the shipped size
  count=64
fi

if [ "$lecture" = 1 ]; then  # the lecture's own data: measured here, never copied into the repository
  src=${LECTURE:?set LECTURE to the folder holding pixel_color.txt and colormap.txt}
  work=$(mktemp -d); trap 'rm -rf "$work" ${scratch:+"$scratch"}' EXIT
  head -n 712 "$src/pixel_color.txt" > "$work/train.txt"
  tail -n +713 "$src/pixel_color.txt" > "$work/test.txt"
  run=${run%/sprites}/lecture
  [ "$quick" = 1 ] && lecture_args=(--steps 6 --valid-every 3 --batch-size 8 --hidden 32) \
                   || lecture_args=(--steps 4000 --valid-every 100 --batch-size 32 --hidden 64 --dropout 0.3 --ema 0.999)
  [ "$quick" = 1 ] && vae_args=(--steps 6 --valid-every 3 --hidden 8) \
                   || vae_args=(--minutes 10 --valid-every 500 --ema 0.999)  # one CPU thread
  rm -rf "$run" "$run-vae"
  genseq train lm "$work/train.txt" --colormap "$src/colormap.txt" -o "$run" "${lecture_args[@]}" --quiet
  genseq eval "$work/test.txt" --colormap "$src/colormap.txt" -m "$run/best.pt" --json | tee "$run/test.json"
  # the lecture's VAE: ten code dimensions, the same 712/80 split; its sweep stays with the data
  OMP_NUM_THREADS=1 genseq train vae "$work/train.txt" --colormap "$src/colormap.txt" -o "$run-vae" "${vae_args[@]}" --quiet
  genseq eval "$work/test.txt" --colormap "$src/colormap.txt" -m "$run-vae" --json | tee "$run-vae/test.json"
  genseq traverse -m "$run-vae" -o "$run-vae/traverse.png"
  genseq sample -m "$run-vae" -n 32 --seed 0 -o "$run-vae/samples.png"
  exit 0
fi

if [ "$stage" -le 1 ]; then
  echo "== 1. corpus: $corpus"
  [ -d "$corpus/train" ] || python corpora/sprites/build.py
  echo "$(ls "$corpus/train" | wc -l) train, $(ls "$corpus/valid" | wc -l) valid, $(ls "$corpus/test" | wc -l) test sprites"
fi
if [ "$stage" -le 2 ]; then
  echo "== 2. palette and training -> $run"
  rm -rf "$run"
  genseq train lm "$corpus/train" --valid "$corpus/valid" -o "$run" "${train_args[@]}" --quiet
fi
if [ "$stage" -le 3 ]; then
  echo "== 3. held-out score on $corpus/test"
  genseq eval "$corpus/test" -m "$run/best.pt" --json | tee "$run/test.json"
fi
if [ "$stage" -le 4 ]; then
  echo "== 4. pictures"
  genseq sample -m "$run/best.pt" -n "$count" --temperature 0.9 --seed 0 -o "$run/samples.png"
  first=$(ls "$corpus/test" | head -n 1)
  genseq complete "$corpus/test/$first" -m "$run/best.pt" -n 8 --keep 0.5 --seed 0 -o "$run/completions.png"
fi
