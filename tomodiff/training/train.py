"""Training of EDM-preconditioned U-Net priors on phantoms (generated on the fly) or volume files.

``train(TrainConfig(...), out_dir)`` runs until ``steps`` or ``max_minutes``, checkpointing
``out_dir/checkpoint.pt`` every ``checkpoint_minutes`` (atomically) and on exit; calling it again on
the same directory resumes exactly where the checkpoint left off (the batch and noise of every step
are functions of ``(run_seed, step)`` only); resuming with different defining settings is an error
that lists the differences. It logs to ``out_dir/train.log`` and ends with a PNG grid of
unconditional samples from the EMA weights.

With ``val_data`` the EMA weights are scored every ``eval_every`` steps on held-out volumes
(:class:`~tomodiff.training.heldout.HeldOutScore`: denoising gain over the best Gaussian filter at
σ = 0.1, three scales); each score goes to ``out_dir/heldout.jsonl`` and the best EMA weights so far
to ``out_dir/best.pt``. ``test_data`` is scored alongside for the learning curve only, never for
selection. ``export(out_dir/checkpoint.pt, weights.pt)`` writes the small EMA-only file that
:mod:`tomodiff.priors.registry` loads, from ``best.pt`` where there is one.

Real CT volumes (``data``) are drawn through :mod:`tomodiff.training.ct_data`: every orientation,
flips, 90° rotations, continuous rescaling (``scale_range``) and intensity jitter (``augment``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import phantoms
from ..io.atomic import write_bytes
from ..priors.edm import NOISE_DISTRIBUTIONS, EDMDenoiser, heun_sample
from ..priors.registry import network_shape, save_prior
from ..priors.slab_prior import SlabPrior
from ..priors.unet import UNet, n_params
from .ct_data import Volume, intensity_jitter, load_volumes, random_slab_crop, random_slice_crop
from .ct_pairs import random_acquisition, scan_and_reconstruct
from .heldout import ConditionalScore, HeldOutScore

OFFSET, SCALE = 0.5, 2.0  # [0, 1] data -> [-1, 1] network space


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint).

    dims: 2 (slice prior, ``size``² slices) or 3 (patch prior, ``size``³ patches cropped from
    ``source_size``³ phantoms). data: None = phantoms of ``families`` on the fly, else a path (or
    list) of .npy/.npz/.h5 volumes in [0, 1]. noise: "karras" (log-normal σ) or "cosine".
    """
    name: str = "slice-64"
    dims: int = 2
    size: int = 64
    source_size: int = 64
    channels: tuple = (16, 32, 64, 96)
    emb_dim: int = 128
    batch: int = 32
    lr: float = 5e-4
    warmup: int = 200
    ema_decay: float = 0.998
    noise: str = "karras"
    steps: int = 1_000_000
    max_minutes: float | None = None
    checkpoint_minutes: float = 5.0
    run_seed: int = 0
    families: tuple = phantoms.FAMILIES
    data: str | list | None = None
    sigma_data: float | None = None
    threads: int | None = 1
    device: str = "auto"
    grid_samples: int = 16
    augment: bool = True
    scale_range: tuple = (1.0, 4.0)
    precision: str = "fp32"
    val_data: str | list | None = None
    test_data: str | list | None = None
    eval_every: int = 250
    context: int = 0
    thickness_range: tuple = (0.5, 2.0)
    conditional: bool = False
    cond_dropout: float = 0.15
    cond_views: tuple = (4, 64)
    cond_arc_prob: float = 0.3
    cond_noise: tuple = (0.002, 0.03)

    def __post_init__(self):
        self.scale_range = tuple(float(s) for s in self.scale_range)
        self.thickness_range = tuple(float(s) for s in self.thickness_range)
        self.cond_views = tuple(int(v) for v in self.cond_views)
        self.cond_noise = tuple(float(v) for v in self.cond_noise)
        if self.context < 0 or self.context > 8:
            raise ValueError(f"context must be 0 (a slice prior) or 1..8 slices each side, got {self.context}")
        if (self.context or self.conditional) and (self.dims != 2 or self.data is None):
            raise ValueError("a 2.5D (context > 0) or conditional prior needs dims=2 and volume data")
        if self.context and self.conditional:
            raise ValueError("a prior is either 2.5D (context > 0) or conditional, not both")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if not 1.0 <= self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must satisfy 1 <= low <= high, got {self.scale_range}")
        self.channels, self.families = tuple(self.channels), tuple(self.families)
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if self.noise not in NOISE_DISTRIBUTIONS:
            raise ValueError(f"noise must be one of {list(NOISE_DISTRIBUTIONS)}, got {self.noise!r}")
        bad = [f for f in self.families if f not in phantoms.FAMILIES]
        if bad:
            raise ValueError(f"unknown families {bad}; choose from {phantoms.FAMILIES}")
        if self.size % 2 ** (len(self.channels) - 1):
            raise ValueError(f"size {self.size} must be divisible by {2 ** (len(self.channels) - 1)}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# settings that may change when a run resumes: stopping rule, runtime knobs and evaluation only
RUNTIME_KEYS = ("steps", "max_minutes", "checkpoint_minutes", "threads", "device", "grid_samples",
                "val_data", "test_data", "eval_every")


def config_differences(saved: dict, wanted: dict) -> list[str]:
    """``key: saved -> wanted`` for every defining setting that differs (σ_data only if given)."""
    out = []
    for k in sorted(set(saved) | set(wanted)):
        if k in RUNTIME_KEYS or (k == "sigma_data" and wanted.get(k) is None):
            continue
        field = TrainConfig.__dataclass_fields__.get(k)
        a, b = saved.get(k, field.default if field is not None else None), wanted.get(k)
        if a != b:
            out.append(f"{k}: {a!r} -> {b!r}")
    return out


# -- data ------------------------------------------------------------------------------------------
def _crop(vol, size: int, dims: int, rng: np.random.Generator) -> torch.Tensor:
    """A random ``size``² axial slice crop (dims=2) or ``size``³ patch (dims=3) of a (Z, Y, X) volume."""
    vol = vol.data if isinstance(vol, Volume) else vol
    Z, Y, X = vol.shape
    if Y < size or X < size or (dims == 3 and Z < size):
        raise ValueError(f"volume {tuple(vol.shape)} is smaller than the training size {size}")
    y, x = int(rng.integers(Y - size + 1)), int(rng.integers(X - size + 1))
    if dims == 2:
        return vol[int(rng.integers(Z)), y:y + size, x:x + size][None]
    z = int(rng.integers(Z - size + 1))
    return vol[z:z + size, y:y + size, x:x + size][None]


def make_batch(cfg: TrainConfig, step: int, volumes: list | None = None) -> torch.Tensor:
    """Clean batch in data units: ``(B, 1, S, S)`` or ``(B, 1, S, S, S)``; a function of (run_seed, step)."""
    rng = np.random.default_rng([cfg.run_seed, step, 11])
    if volumes is not None:
        picks = [volumes[int(rng.integers(len(volumes)))] for _ in range(cfg.batch)]
        if cfg.context:
            return torch.stack([intensity_jitter(random_slab_crop(v, cfg.size, cfg.context, rng,
                                                                  scale_range=cfg.scale_range,
                                                                  thickness_range=cfg.thickness_range), rng)
                                for v in picks])
        if cfg.dims == 2 and cfg.augment:
            return torch.stack([intensity_jitter(random_slice_crop(v, cfg.size, rng, scale_range=cfg.scale_range), rng)
                                for v in picks])
        return torch.stack([_crop(v, cfg.size, cfg.dims, rng) for v in picks])
    if cfg.dims == 2:
        return phantoms.training_slices(cfg.batch, cfg.size, cfg.run_seed, step, families=cfg.families)
    out, k = [], 0
    while len(out) < cfg.batch:  # two patches from each generated volume
        fam = cfg.families[int(rng.integers(len(cfg.families)))]
        vol = phantoms.generate(fam, (cfg.source_size,) * 3, phantoms.training_seed(cfg.run_seed, step, k))
        out += [_crop(vol, cfg.size, 3, rng) for _ in range(min(2, cfg.batch - len(out)))]
        k += 1
    return torch.stack(out)


# -- model -----------------------------------------------------------------------------------------
def build_denoiser(cfg: TrainConfig | dict, sigma_data: float) -> EDMDenoiser:
    c = cfg.to_dict() if isinstance(cfg, TrainConfig) else cfg
    return EDMDenoiser(UNet(**network_shape(c)), sigma_data=sigma_data, offset=OFFSET, scale=SCALE,
                       context=c.get("context", 0), conditional=c.get("conditional", False))


def make_condition(cfg: TrainConfig, step: int, clean_u: torch.Tensor):
    """Conditional priors: ``(cond_u, keep)`` for a clean normalised batch, both functions of
    ``(run_seed, step)``: the FBP of a simulated scan (:mod:`.ct_pairs`) in normalised units and the
    per-sample 1/0 of condition dropout."""
    rng = np.random.default_rng([cfg.run_seed, step, 5])
    acq = random_acquisition(rng, clean_u.shape[0], views=cfg.cond_views, arc_prob=cfg.cond_arc_prob,
                             noise=cfg.cond_noise)
    g = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    cond = scan_and_reconstruct(clean_u.float().cpu() / SCALE + OFFSET, acq, g)
    keep = torch.from_numpy((rng.random(clean_u.shape[0]) >= cfg.cond_dropout).astype(np.float32))
    return ((cond - OFFSET) * SCALE).to(clean_u.device), keep.to(clean_u.device)


def _estimate_sigma_data(cfg: TrainConfig, volumes) -> float:
    x = torch.cat([make_batch(cfg, 10**9 + i, volumes) for i in range(4)])  # steps never trained on
    return float(((x - OFFSET) * SCALE).std())


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _save_atomic(obj, path: Path) -> None:
    """Serialise in memory, then write atomically (temporary file, fsync, rename): an interrupted or
    failed write leaves the previous checkpoint intact, and a full disk is one clear
    :class:`~tomodiff.io.atomic.OutputWriteError` (``torch.save`` straight to a file reports it as an
    ``enforce fail``)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def save_sample_grid(denoiser, cfg: TrainConfig, path: Path, n: int, seed: int = 0, steps: int = 18) -> None:
    """PNG grid of ``n`` unconditional EDM-Heun samples (3D: the middle axial slice of each patch)."""
    import matplotlib  # optional: matplotlib (figures only)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional: matplotlib (figures only)

    dev = next(denoiser.parameters()).device
    shape = (n, 1) + (cfg.size,) * cfg.dims
    x = heun_sample(denoiser, shape, steps=steps, sigma_max=40.0 / SCALE, sigma_min=0.002 / SCALE,
                    generator=torch.Generator().manual_seed(seed), device=dev).cpu()
    if cfg.dims == 3:
        x = x[:, :, cfg.size // 2]
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(x[i, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
    fig.suptitle(f"{cfg.name}: unconditional samples (EDM Heun, {2 * steps - 1} NFE)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- the loop --------------------------------------------------------------------------------------
def _resumed(cfg: TrainConfig, ckpt_path: Path):
    """``(cfg, state)``: the checkpoint's defining settings with this call's runtime knobs, and its
    state (``None`` for a new run); a resume with other defining settings is an error."""
    if not ckpt_path.exists():
        return cfg, None
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    diff = config_differences(state["config"], cfg.to_dict())
    if diff:
        raise ValueError(f"{ckpt_path} was trained with other settings; resume with the same ones or use a "
                         f"new directory. Differences (checkpoint -> requested): " + "; ".join(diff))
    saved = TrainConfig(**state["config"])
    # a resumed run keeps its defining settings; only the stopping rule and runtime knobs may change
    for k in RUNTIME_KEYS:
        setattr(saved, k, getattr(cfg, k))
    return saved, state


def _models(cfg: TrainConfig, dev, state):
    """``(model, ema, optimiser, step, elapsed_s, cpu_s)``, new or restored from ``state``."""
    with torch.random.fork_rng(devices=[]):  # initial weights depend on run_seed only
        torch.manual_seed(cfg.run_seed)
        model = build_denoiser(cfg, cfg.sigma_data).to(dev)
    ema = build_denoiser(cfg, cfg.sigma_data).to(dev).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if state is None:
        ema.load_state_dict(model.state_dict())
        return model, ema, opt, 0, 0.0, 0.0
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["opt"])
    # wall and process CPU seconds (all threads), summed over resumes
    return model, ema, opt, state["step"], state["elapsed_s"], state.get("cpu_s", 0.0)


def _step(cfg: TrainConfig, step: int, volumes, model, ema, opt, dev) -> float:
    """One optimiser step (batch, σ and noise functions of ``(run_seed, step)``) and the EMA update;
    returns the loss."""
    u0 = ((make_batch(cfg, step, volumes) - OFFSET) * SCALE).to(dev)
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.run_seed, step, 3]).generate_state(1)[0]))
    s = NOISE_DISTRIBUTIONS[cfg.noise](u0.shape[0], g).view(-1, *([1] * (u0.dim() - 1))).to(dev)
    noise = torch.randn(u0.shape, generator=g).to(dev)
    cond = make_condition(cfg, step, u0) if cfg.conditional else (None, None)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        loss = model.loss(u0, s, noise, *cond).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for group in opt.param_groups:
        group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
    opt.step()
    decay = min(cfg.ema_decay, (2 + step) / (11 + step))  # (1 + n) / (10 + n) after n = step + 1 steps
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - decay)
    return float(loss.detach())


def train(cfg: TrainConfig, out_dir, *, progress: bool = True, grid: bool = True) -> Path:
    """Train (or resume) into ``out_dir``; returns the checkpoint path. See the module docstring."""
    from tqdm import tqdm  # start-up time

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = _device(cfg.device)
    volumes = load_volumes(cfg.data) if cfg.data else None
    cfg, state = _resumed(cfg, ckpt_path)
    if cfg.sigma_data is None:
        cfg.sigma_data = _estimate_sigma_data(cfg, volumes)
    model, ema, opt, step, elapsed, cpu0 = _models(cfg, dev, state)

    def checkpoint():
        _save_atomic({"config": cfg.to_dict(), "step": step, "elapsed_s": elapsed, "cpu_s": cpu0 + time.process_time(),
                      "model": model.state_dict(),
                      "ema": ema.state_dict(), "opt": opt.state_dict(), "n_params": n_params(model.net),
                      "hardware": _hardware(dev)}, ckpt_path)

    log = open(out / "train.log", "a")
    log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {'resume at step %d' % step if state else 'start'}: "
              f"{json.dumps(cfg.to_dict())} params={n_params(model.net)} device={dev}\n")
    evaluate = _HeldOut(cfg, out, log) if cfg.val_data else None
    t_start, t_ckpt, run_loss, elapsed0 = time.time(), time.time(), None, elapsed
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, dynamic_ncols=True, desc=cfg.name)
    restore = _checkpoint_on_sigterm()
    try:
        while step < cfg.steps:
            if cfg.max_minutes is not None and (time.time() - t_start) / 60 >= cfg.max_minutes:
                break
            lv = _step(cfg, step, volumes, model, ema, opt, dev)
            step += 1
            run_loss = lv if run_loss is None else 0.98 * run_loss + 0.02 * lv
            elapsed = elapsed0 + time.time() - t_start
            bar.update(1)
            bar.set_postfix(loss=f"{run_loss:.4f}")
            if step % 25 == 0:
                log.write(f"step {step} loss {lv:.5f} avg {run_loss:.5f} elapsed_s {elapsed:.0f}\n")
                log.flush()
            if evaluate is not None and step % cfg.eval_every == 0:
                evaluate(ema, step, elapsed, cpu0 + time.process_time())
            if time.time() - t_ckpt >= cfg.checkpoint_minutes * 60:
                checkpoint()
                t_ckpt = time.time()
    finally:
        restore()
        bar.close()
        checkpoint()
        log.write(f"# checkpoint at step {step}, elapsed {elapsed:.0f} s\n")
        log.flush()
    if grid and cfg.grid_samples > 0 and not cfg.context:  # a 2.5D prior's samples need a volume
        save_sample_grid(ema, cfg, out / f"samples_step{step}.png", cfg.grid_samples)
    log.close()
    return ckpt_path


def _checkpoint_on_sigterm():
    """Turn SIGTERM (a batch system's time limit, ``kill``) into KeyboardInterrupt, so that the loop's
    ``finally`` writes a checkpoint; returns the function that restores the previous handler."""

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    return lambda: signal.signal(signal.SIGTERM, previous)


class _HeldOut:
    """Scores the EMA weights on held-out volumes, appends to ``heldout.jsonl``, keeps ``best.pt``.

    Slice priors: :class:`~.heldout.HeldOutScore`; 2.5D priors: the same on stacks of neighbours,
    the network wrapped as a :class:`~tomodiff.priors.slab_prior.SlabPrior`; conditional priors:
    :class:`~.heldout.ConditionalScore` selects, and the unconditional branch's denoising score
    (condition dropped) is logged beside it.
    """

    def __init__(self, cfg: TrainConfig, out: Path, log):
        self.cfg = cfg
        val, test = load_volumes(cfg.val_data), load_volumes(cfg.test_data) if cfg.test_data else None
        if cfg.conditional:
            self.val, self.test = ConditionalScore(val), ConditionalScore(test) if test else None
            self.uncond = HeldOutScore(val)
        else:
            self.val = HeldOutScore(val, context=cfg.context)
            self.test = HeldOutScore(test, context=cfg.context) if test else None
            self.uncond = None
        self.out, self.log = out, log
        best = out / "best.pt"
        self.best = -math.inf
        if best.exists():
            self.best = torch.load(best, map_location="cpu", weights_only=False)["val"]["gain"]

    def _scored(self, ema):
        if self.cfg.context:
            return SlabPrior(ema, self.cfg.size, max_batch=self.cfg.batch)
        return ema

    def __call__(self, ema, step: int, elapsed: float, cpu_s: float | None = None) -> None:
        ema.eval()
        dev = next(ema.parameters()).device
        scored = self._scored(ema)
        rec = {"step": step, "elapsed_s": round(elapsed), "cpu_s": None if cpu_s is None else round(cpu_s),
               "val": self.val(scored, device=dev)}
        if self.test is not None:
            rec["test"] = self.test(scored, device=dev)
        if self.uncond is not None:
            rec["val_unconditional"] = self.uncond(ema)
        with open(self.out / "heldout.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.log.write(f"heldout step {step} val gain {rec['val']['gain']:+.3f} dB"
                       + (f" test gain {rec['test']['gain']:+.3f} dB" if self.test else "") + "\n")
        self.log.flush()
        if rec["val"]["gain"] > self.best:
            self.best = rec["val"]["gain"]
            _save_atomic({"step": step, "elapsed_s": elapsed, "ema": ema.state_dict(), "val": rec["val"]},
                         self.out / "best.pt")


def _hardware(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({os.cpu_count()} cores visible, torch threads {torch.get_num_threads()})"


def export(checkpoint, out_path, *, best: bool = True, **meta) -> Path:
    """Write the EMA weights of a training checkpoint as a prior file (see ``registry.save_prior``);
    with ``best`` and a ``best.pt`` beside the checkpoint, the weights that scored best on the
    held-out volumes instead of the last ones."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = state["config"]
    best_path = Path(checkpoint).with_name("best.pt")
    if best and best_path.exists():
        b = torch.load(best_path, map_location="cpu", weights_only=False)
        state = dict(state, ema=b["ema"], step=b["step"], elapsed_s=b["elapsed_s"])
        meta.setdefault("selected_by", {"held_out_val": b["val"], "step": b["step"]})
    info = {"name": cfg["name"], "kind": "slice" if cfg["dims"] == 2 else "patch", "size": cfg["size"],
            "training": {"steps": state["step"], "wall_time_s": round(state["elapsed_s"]), "batch": cfg["batch"],
                         "hardware": state.get("hardware", "unknown"), "config": cfg},
            "n_params": state.get("n_params")}
    info.update(meta)
    den = build_denoiser(cfg, cfg["sigma_data"])
    den.load_state_dict(state["ema"])
    return save_prior(den, cfg, info, out_path)
