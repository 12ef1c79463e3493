"""Write the fixed benchmark set: ``python -m tomodiff.phantoms.make_benchmark_set [OUT_DIR]``.

The set (default ``<repo>/phantoms``) is a list of HDF5 files, each with one dataset ``/volume``
``(Z, Y, X)`` float32 in [0, 1] (gzip + shuffle; phantom values rounded to multiples of 2⁻¹² so
that they compress, see ``QUANT``), and ``manifest.json`` with, per file: generator, parameters,
seed (all inside ``tomodiff.phantoms.BENCHMARK_SEEDS``), the sha256 of the volume's float32
C-order bytes (``sha256``) and of the file (``file_sha256``). Optionally it adds the real VTK
head CT from ``../shared/data`` (BSD-3-style licence, see its ``LICENSE`` note in the README), and
the "real CT" group (family ``real_ct``): 64³ and 128³ crops of the corpus volumes that no shipped
prior trains on (``HELD_OUT_CT``), block-averaged by integer factors (see ``REAL_CT``);
``python -m tomodiff.phantoms.make_benchmark_set --real-ct-only`` adds just those.
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
CT_CORPUS = HEAD.parents[1] / "ct_corpus"
# Corpus volumes held out from every shipped prior's training (and from its checkpoint selection).
HELD_OUT_CT = ("imageio_stent_abdomen_cta", "lidc2_chest_cta_8bit")
# (id, corpus volume, block-average factors (z, y, x), edge): the central edge³ of the averaged volume
REAL_CT = [
    ("ct_abdomen_64", "imageio_stent_abdomen_cta", (2, 2, 2), 64),
    ("ct_abdomen_128", "imageio_stent_abdomen_cta", (1, 1, 1), 128),
    ("ct_chest_64", "lidc2_chest_cta_8bit", (2, 4, 4), 64),
    ("ct_chest_128", "lidc2_chest_cta_8bit", (1, 2, 2), 128),
]


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


def block_average(vol: np.ndarray, factors) -> np.ndarray:
    """Mean over ``factors``-sized blocks (trailing remainders dropped)."""
    fz, fy, fx = factors
    Z, Y, X = (n // f * f for n, f in zip(vol.shape, factors))
    v = vol[:Z, :Y, :X].reshape(Z // fz, fz, Y // fy, fy, X // fx, fx)
    return v.mean(axis=(1, 3, 5))


def real_ct_volume(source: str, factors, edge: int, corpus=CT_CORPUS) -> tuple[np.ndarray, dict]:
    """One real-CT benchmark volume (see ``REAL_CT``) in [0, 1] with its description."""
    with np.load(Path(corpus) / f"{source}.npz") as z:
        vol = z["volume"].astype(np.float32) / 65535
        spacing = [float(s) * f for s, f in zip(z["spacing_zyx"], factors)]
    vol = block_average(vol, factors)
    if min(vol.shape) < edge:
        raise ValueError(f"{source} averaged by {factors} is {vol.shape}, smaller than {edge}³")
    z0, y0, x0 = ((n - edge) // 2 for n in vol.shape)
    vol = quantise(vol[z0:z0 + edge, y0:y0 + edge, x0:x0 + edge])
    return vol, {"source": f"ct_corpus/{source}.npz (see ../shared/data/ct_corpus/SOURCES.md)",
                 "block_average": list(factors), "crop_start_zyx": [z0, y0, x0], "spacing_zyx_mm": spacing,
                 "held_out": "never trained on by ct-slice (nor used to select its checkpoint)"}


def add_real_ct(out_dir, corpus=CT_CORPUS) -> dict:
    """Write the ``REAL_CT`` volumes into ``out_dir`` and (re)place their manifest entries."""
    out = Path(out_dir)
    man_path = out / "manifest.json"
    manifest = json.loads(man_path.read_text())
    entries = [e for e in manifest["entries"] if e.get("family") != "real_ct"]
    for name, source, factors, edge in REAL_CT:
        vol, meta = real_ct_volume(source, factors, edge, corpus)
        path = out / f"{name}.h5"
        _write(path, vol, {"generator": "real_ct", **meta})
        entries.append({"file": path.name, "generator": "real_ct", "family": "real_ct", "shape": list(vol.shape),
                        "seed": None, "parameters": meta, "sha256": array_sha256(vol),
                        "file_sha256": file_sha256(path)})
    manifest["entries"] = entries
    man_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


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
    if include_real and CT_CORPUS.exists():
        manifest = add_real_ct(out)
    return manifest


def load(path) -> np.ndarray:
    """Read the ``/volume`` dataset of a benchmark file as float32 ``(Z, Y, X)``."""
    import h5py

    with h5py.File(path, "r") as h:
        return h["volume"][()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tomodiff.phantoms.make_benchmark_set", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", default=str(Path(__file__).resolve().parents[2] / "phantoms"))
    ap.add_argument("--no-real", action="store_true", help="skip the real head CT volume and the real-CT group")
    ap.add_argument("--real-ct-only", action="store_true", help="only (re)write the real-CT group into the manifest")
    a = ap.parse_args(argv)
    m = add_real_ct(a.out_dir) if a.real_ct_only else make(a.out_dir, include_real=not a.no_real)
    total = sum((Path(a.out_dir) / e["file"]).stat().st_size for e in m["entries"])
    print(f"wrote {len(m['entries'])} volumes ({total / 1e6:.2f} MB) and manifest.json to {a.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
