"""Split a parallel-beam volume into overlapping slabs of axial slices, and blend them back.

In parallel-beam geometry detector row ``v`` sees only slice ``z = v`` (when rows and slices have
the same pitch), so a slab of slices with its detector rows is a CT problem of its own: memory then
grows with the slab, not the volume, and finished slabs can be checkpointed.
"""

from __future__ import annotations

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


def blend_stream(plan: list[tuple[int, int]], part):
    """Join slab results one slab at a time: yields ``(z0, z1, joined)`` with ``joined`` the final
    slices ``z0:z1`` ``(..., z1 − z0, Y, X)``, in order, holding at most two slabs at once.

    ``part(k)`` returns slab ``k``'s result ``(..., Z_k, Y, X)``. Slices shared by neighbours are
    cross-faded linearly from the earlier slab to the later one (:func:`slab_weights`): the sums
    ``0 + w_k·x_k + w_{k+1}·x_{k+1}`` over ``0 + w_k + w_{k+1}``, the same additions in the same
    order whether the volume is joined in memory or streamed to a file, so both are bitwise equal.
    """
    carry = None  # (accumulated values, weights) of the slices shared with the next slab
    for k, (start, stop) in enumerate(plan):
        x = part(k)
        w = slab_weights(plan, k, x.dtype, x.device)
        acc = x.new_zeros(x.shape)
        wsum = x.new_zeros(x.shape[-3])
        if carry is not None:
            s = carry[0].shape[-3]
            acc[..., :s, :, :] += carry[0]
            wsum[:s] += carry[1]
        acc += x * w.view(-1, 1, 1)
        wsum += w
        final = (plan[k + 1][0] if k + 1 < len(plan) else stop) - start
        carry = (acc[..., final:, :, :], wsum[final:]) if final < acc.shape[-3] else None
        yield start, start + final, acc[..., :final, :, :] / wsum[:final].view(-1, 1, 1)


def blend(parts: list[torch.Tensor], plan: list[tuple[int, int]], n_slices: int) -> torch.Tensor:
    """Join slab results ``(..., Z_k, Y, X)`` into ``(..., n_slices, Y, X)`` (:func:`blend_stream`)."""
    chunks = [joined for _, _, joined in blend_stream(plan, parts.__getitem__)]
    out = torch.cat(chunks, dim=-3) if len(chunks) > 1 else chunks[0]
    if out.shape[-3] != n_slices:
        raise ValueError(f"the plan covers {out.shape[-3]} slices, expected {n_slices}")
    return out


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
