#!/bin/bash
# Slab-parallel diffusion reconstruction on a SLURM cluster: 2 nodes x 4 GPUs, one rank per GPU.
#
#   sbatch examples/slurm_reconstruct.sh scan.h5 recon.h5
#
# Every node runs one torchrun agent; the agents meet at the first node of the allocation (c10d
# rendezvous) and start 4 ranks each (LOCAL_RANK 0-3 -> cuda:0-3). The slabs of each pass are
# shared among the 8 ranks; rank 0 writes OUT. OUT and the checkpoint directory must be on a
# filesystem every node sees (ranks hand slabs over through it). If a rank dies the others stop
# with an error and the finished slabs stay in the checkpoint: resubmit the same job, with any
# number of nodes or GPUs, and it resumes.
#SBATCH --job-name=tomodiff
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1          # one torchrun agent per node
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.log

set -euo pipefail
SCAN=${1:?usage: sbatch slurm_reconstruct.sh SCAN.h5 OUT.h5}
OUT=${2:?usage: sbatch slurm_reconstruct.sh SCAN.h5 OUT.h5}
GPUS_PER_NODE=4

HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export OMP_NUM_THREADS=$((SLURM_CPUS_PER_TASK / GPUS_PER_NODE))
export TOMODIFF_DIST_TIMEOUT=3600    # seconds a rank waits for a slower one at the end of a pass

srun torchrun \
    --nnodes="$SLURM_NNODES" --nproc-per-node="$GPUS_PER_NODE" \
    --rdzv-backend=c10d --rdzv-endpoint="$HEAD_NODE:29500" --rdzv-id="$SLURM_JOB_ID" \
    -m tomodiff reconstruct "$SCAN" \
        --method pigdm --prior slice-64 --steps 50 --samples 4 --slab 32 \
        --device cuda --checkpoint "$OUT.slabs" --out "$OUT"
