"""Write the fixed benchmark set: ``python -m tomodiff.phantoms.make_benchmark_set [OUT_DIR]``.

The set (default ``<repo>/phantoms``) is a list of HDF5 files, each with one dataset ``/volume``
``(Z, Y, X)`` float32 in [0, 1] (gzip + shuffle; phantom values rounded to multiples of 2⁻¹² so
that they compress, see ``QUANT``), and ``manifest.json`` with, per file: generator, parameters,
seed (all inside ``tomodiff.phantoms.BENCHMARK_SEEDS``), the sha256 of the volume's float32
C-order bytes (``sha256``) and of the file (``file_sha256``). Optionally it adds the real VTK
head CT from ``../shared/data`` (BSD-3-style licence, see its ``LICENSE`` note in the README).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from . import BENCHMARK_SEEDS, generate

QUANT = 2.0 ** -12
VERSION = 1

# (id, family, shape, seed offset inside BENCHMARK_SEEDS)
SET = [
    ("shepp_logan_64_a", "shepp_logan", (64, 64, 64), 0),
    ("shepp_logan_64_b", "shepp_logan", (64, 64, 64), 1),
    ("ellipsoids_64_a", "ellipsoids", (64, 64, 64), 2),
    ("ellipsoids_64_b", "ellipsoids", (64, 64, 64), 3),
    ("foam_64_a", "foam", (64, 64, 64), 4),
    ("foam_64_b", "foam", (64, 64, 64), 5),
    ("texture_64_a", "texture", (64, 64, 64), 6),
    ("texture_64_b", "texture", (64, 64, 64), 7),
    ("foam_128", "foam", (128, 128, 128), 8),
    ("texture_128", "texture", (128, 128, 128), 9),
]
HEAD = Path(__file__).resolve().parents[3] / "shared" / "data" / "vtk_headsq" / "head.mha"


def quantise(vol: np.ndarray) -> np.ndarray:
    return (np.round(np.asarray(vol, dtype=np.float64) / QUANT) * QUANT).astype(np.float32)


def array_sha256(vol: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vol, dtype=np.float32).tobytes()).hexdigest()


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_head(path=HEAD) -> tuple[np.ndarray, dict]:
    """The VTK 'headsq' CT (93, 64, 64), scaled to [0, 1] by its maximum (HU + 1000 = 3926)."""
    raw = Path(path).read_bytes()
    vol = np.frombuffer(raw[-93 * 64 * 64 * 2:], "<u2").reshape(93, 64, 64).astype(np.float32)
    return vol / vol.max(), {"source": "CIL-Data head.mha from VTK-Data Data/headsq (BSD-3-style)",
                             "spacing_zyx_mm": [1.5, 3.2, 3.2], "scaling": "raw / max(raw) (max = 3926)"}


def _write(path: Path, vol: np.ndarray, attrs: dict) -> None:
    import h5py

    with h5py.File(path, "w", track_order=True) as h:
        d = h.create_dataset("volume", data=vol, compression="gzip", compression_opts=6, shuffle=True,
                             chunks=(min(16, vol.shape[0]),) + vol.shape[1:])
        for k, v in attrs.items():
            d.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v


def make(out_dir, *, include_real: bool = True) -> dict:
    """Generate every entry of ``SET`` (and the real head if present) into ``out_dir``; returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, family, shape, k in SET:
        seed = BENCHMARK_SEEDS.start + k
        vol = quantise(generate(family, shape, seed).numpy())
        params = {"family": family, "shape": list(shape), "seed": seed, "quantisation": QUANT}
        path = out / f"{name}.h5"
        _write(path, vol, {"generator": "tomodiff.phantoms.generate", **params})
        entries.append({"file": path.name, "generator": "tomodiff.phantoms.generate", "family": family,
                        "shape": list(shape), "seed": seed, "parameters": params,
                        "sha256": array_sha256(vol), "file_sha256": file_sha256(path)})
    if include_real and HEAD.exists():
        vol, meta = read_head()
        path = out / "real_head_vtk.h5"
        _write(path, vol, {"generator": "real", **meta})
        entries.append({"file": path.name, "generator": "real", "family": "real", "shape": list(vol.shape),
                        "seed": None, "parameters": meta, "sha256": array_sha256(vol), "file_sha256": file_sha256(path)})
    manifest = {"version": VERSION, "dataset": "volume", "seed_range": [BENCHMARK_SEEDS.start, BENCHMARK_SEEDS.stop],
                "regenerate": "python -m tomodiff.phantoms.make_benchmark_set", "entries": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load(path) -> np.ndarray:
    """Read the ``/volume`` dataset of a benchmark file as float32 ``(Z, Y, X)``."""
    import h5py

    with h5py.File(path, "r") as h:
        return h["volume"][()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tomodiff.phantoms.make_benchmark_set", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", default=str(Path(__file__).resolve().parents[2] / "phantoms"))
    ap.add_argument("--no-real", action="store_true", help="skip the real head CT volume")
    a = ap.parse_args(argv)
    m = make(a.out_dir, include_real=not a.no_real)
    total = sum((Path(a.out_dir) / e["file"]).stat().st_size for e in m["entries"])
    print(f"wrote {len(m['entries'])} volumes ({total / 1e6:.2f} MB) and manifest.json to {a.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
