#!/usr/bin/env bash
# Train (or resume) one of the two CT priors in progress into training/ct-KIND (committed: a fresh clone
# resumes exactly where the committed run stopped):
#   slab: `ct-slab`, a 2.5D prior (--context 2: each slice denoised from 5 adjacent slices);
#   cond: `ct-cond`, a conditional prior for classifier-free guidance (--conditional: slice + FBP of a
#         simulated random sparse-view / limited-arc scan, condition dropout 0.15).
# Usage: bash scripts/train_ct_prior.sh slab|cond [--max-minutes N ...]   (extra arguments go to train-prior)
# Split (whole volumes): train: the 10 corpus volumes below (the three vhf_* are one person, all in
# training; engine_block is kept out, for the volume-rendering demo); validation (checkpoint selection):
# ge_head_tilted; test (learning curve only): imageio_stent_abdomen_cta, lidc2_chest_cta_8bit, VTK head.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=${1:?usage: train_ct_prior.sh slab|cond [train-prior options]}
shift
case "$KIND" in
    slab) FLAGS=(--name ct-slab --context 2) ;;
    cond) FLAGS=(--name ct-cond --conditional) ;;
    *) echo "train_ct_prior.sh: KIND must be slab or cond, got $KIND" >&2; exit 2 ;;
esac
C=../shared/data/ct_corpus  # as the committed runs name their data (a resume checks the paths)
exec .venv/bin/tomodiff train-prior "training/ct-$KIND" "${FLAGS[@]}" --precision bf16 --threads 1 \
    --data $C/lidc0314_chest.npz $C/mricrogl_head_ct.npz $C/itkelastix_neck_slab.npz $C/philips_head_phantom.npz \
           $C/tooth_industrial.npz $C/carp_fish.npz $C/bonsai_tree.npz $C/vhf_head_neck.npz $C/vhf_pelvis.npz \
           $C/vhf_thighs_8bit.npz \
    --val-data $C/ge_head_tilted.npz \
    --test-data $C/imageio_stent_abdomen_cta.npz $C/lidc2_chest_cta_8bit.npz phantoms/real_head_vtk.h5 \
    --no-progress "$@"
