#!/usr/bin/env bash
# Train (or resume) the real-CT slice prior `ct-slice` into RUN_DIR (default training/ct-slice, committed:
# a fresh clone resumes exactly where the shipped run stopped; export with
# `python -m benchmarks.model_card training/ct-slice`).
# Runs unattended on CPU or CUDA (device auto), bf16 autocast, held-out scoring every 250 steps;
# run it again to resume. Extra arguments go to `tomodiff train-prior` (e.g. --max-minutes 60).
# Split (whole volumes; see tomodiff/priors/weights/ct-slice.md):
#   train: 8 corpus volumes below; validation (checkpoint selection): ge_head_tilted;
#   test (learning curve only, never selection): imageio_stent_abdomen_cta, lidc2_chest_cta_8bit, VTK head.
set -euo pipefail
cd "$(dirname "$0")/.."
C=${CT_CORPUS:-../shared/data/ct_corpus}
RUN=${RUN_DIR:-training/ct-slice}
exec .venv/bin/tomodiff train-prior "$RUN" --name ct-slice --channels "${CHANNELS:-16,32,64,96}" --precision bf16 \
    --data $C/lidc0314_chest.npz $C/mricrogl_head_ct.npz $C/itkelastix_neck_slab.npz $C/philips_head_phantom.npz \
           $C/tooth_industrial.npz $C/carp_fish.npz $C/engine_block.npz $C/bonsai_tree.npz \
    --val-data $C/ge_head_tilted.npz \
    --test-data $C/imageio_stent_abdomen_cta.npz $C/lidc2_chest_cta_8bit.npz phantoms/real_head_vtk.h5 \
    --eval-every 250 --no-progress "$@"
