"""Split a parallel-beam volume into overlapping slabs of axial slices, and blend them back.

In parallel-beam geometry detector row ``v`` sees only slice ``z = v`` (when rows and slices have
the same pitch), so a slab of slices with its detector rows is a CT problem of its own: memory then
grows with the slab, not the volume, and finished slabs can be checkpointed.
"""

from __future__ import annotations

import dataclasses

import torch


def plan_slabs(n_slices: int, slab: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_slices)`` with slabs of ``slab`` slices (the last
    one may be shorter), consecutive slabs sharing ``overlap`` slices."""
    if slab < 1 or overlap < 0:
        raise ValueError(f"slab must be >= 1 and overlap >= 0, got slab={slab}, overlap={overlap}")
    if slab >= n_slices:
        return [(0, n_slices)]
    if overlap >= slab:
        raise ValueError(f"overlap ({overlap}) must be smaller than the slab ({slab})")
    out, start = [], 0
    while True:
        stop = min(start + slab, n_slices)
        out.append((start, stop))
        if stop == n_slices:
            return out
        start = stop - overlap


def slab_geometry(geometry, start: int, stop: int):
    """The parallel-beam geometry of slices ``start:stop`` and detector rows ``start:stop``."""
    n = stop - start
    return dataclasses.replace(geometry, volume_shape=(n, *geometry.volume_shape[1:]),
                               det_shape=(n, geometry.det_shape[1]))


def can_split(geometry) -> bool:
    """True when detector rows map one-to-one onto axial slices (parallel beam, equal pitch)."""
    return (geometry is not None and getattr(geometry, "kind", None) == "parallel" and geometry.ndim == 3
            and geometry.det_shape[0] == geometry.volume_shape[0]
            and abs(geometry.det_spacing - geometry.voxel_size) <= 1e-9 * geometry.voxel_size)


def two_pass(plan: list[tuple[int, int]]) -> list[list[int]]:
    """The order in which slabs of ``plan`` run: ``[[0, 2, 4, ...], [1, 3, ...]]``.

    Even slabs do not touch each other (when ``2·overlap <= slab``), so they run first and in any
    order; each odd slab then continues both of its neighbours (their shared slices are known).
    A slab's result depends on the plan only, never on how many processes share the work, so a
    run on N ranks equals a run on one. Two-pass plans need ``2·overlap`` at most the slab length.
    """
    for k in range(1, len(plan) - 1):
        if plan[k - 1][1] > plan[k + 1][0]:
            raise ValueError(f"slabs {k - 1} and {k + 1} overlap ({plan[k - 1]} and {plan[k + 1]}): "
                             f"the overlap must be at most half the slab (--overlap <= --slab / 2)")
    return [list(range(0, len(plan), 2)), list(range(1, len(plan), 2))] if len(plan) > 1 else [[0]]


def slab_weights(plan: list[tuple[int, int]], k: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``(Z_k,)`` blending weights of slab ``k``: 1 inside, linear ramps over the slices it shares
    with its neighbours (up from the previous slab, down towards the next)."""
    start, stop = plan[k]
    w = torch.ones(stop - start, dtype=dtype, device=device)
    if k > 0:  # ramp up over the overlap with the previous slab
        shared = plan[k - 1][1] - start
        if shared > 0:
            w[:shared] = torch.arange(1, shared + 1, dtype=w.dtype, device=w.device) / (shared + 1)
    if k + 1 < len(plan):  # ramp down over the overlap with the next slab
        shared = stop - plan[k + 1][0]
        if shared > 0:
            w[-shared:] = torch.minimum(w[-shared:], torch.arange(shared, 0, -1, dtype=w.dtype,
                                                                  device=w.device) / (shared + 1))
    return w


def blend(parts: list[torch.Tensor], plan: list[tuple[int, int]], n_slices: int) -> torch.Tensor:
    """Join slab results ``(..., Z_k, Y, X)`` into ``(..., n_slices, Y, X)``; overlapping slices are
    cross-faded linearly from the earlier slab to the later one."""
    first = parts[0]
    out = first.new_zeros((*first.shape[:-3], n_slices, *first.shape[-2:]))
    weight = first.new_zeros(n_slices)
    for k, ((start, stop), part) in enumerate(zip(plan, parts)):
        w = slab_weights(plan, k, first.dtype, first.device)
        out[..., start:stop, :, :] += part * w.view(-1, 1, 1)
        weight[start:stop] += w
    return out / weight.view(-1, 1, 1)


def seam_ratio(volume, plan: list[tuple[int, int]]) -> float:
    """Mean ``|x[z+1] − x[z]|`` over slice pairs at slab edges divided by that over the other pairs.

    ``volume``: ``(..., Z, Y, X)``; edge pairs are ``(s−1, s)`` for every slab start ``s > 0`` and
    ``(e−1, e)`` for every slab stop ``e < Z`` of ``plan``. 1 means the edges are as smooth as the
    interior; a visible seam gives more. (The truth's own ratio over the same pairs is the baseline.)
    """
    v = torch.as_tensor(volume).double()
    d = (v[..., 1:, :, :] - v[..., :-1, :, :]).abs().flatten(-2).mean(-1)   # (..., Z−1)
    d = d.reshape(-1, d.shape[-1]).mean(0)
    n = v.shape[-3]
    edges = {s - 1 for s, _ in plan if s > 0} | {e - 1 for _, e in plan if e < n}
    edge = [i for i in sorted(edges) if 0 <= i < n - 1]
    inner = [i for i in range(n - 1) if i not in edges]
    if not edge or not inner:
        raise ValueError(f"seam_ratio: plan {plan} has no slab edges (or no interior) in {n} slices")
    return float(d[edge].mean() / d[inner].mean())
