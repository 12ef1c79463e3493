"""Write the fixed benchmark set: ``python -m benchmarks.make_benchmark_set [OUT_DIR] [--ship]``.

The set (default ``phantoms/`` of the checkout; run from the repository root) is a list of HDF5
files, each with one dataset ``/volume`` ``(Z, Y, X)`` float32 in [0, 1] (gzip + shuffle; phantom
values rounded to multiples of 2⁻¹² so that they compress, see ``QUANT``), and ``manifest.json``
with, per file: generator, parameters, seed (all inside ``tomodiff.phantoms.BENCHMARK_SEEDS``), the
sha256 of the volume's float32 C-order bytes (``sha256``) and of the file (``file_sha256``). From the shared data folder
(``--data-dir``, default ``$TOMODIFF_SHARED_DATA``; ``--no-real`` goes without) it adds the real VTK
head CT (``vtk_headsq/head.mha``, BSD-3-style licence, see the note in ``phantoms/README.md``) and
the "real CT" group (family ``real_ct``): 64³ and 128³ crops of the ``ct_corpus/`` volumes that no
shipped prior trains on (``HELD_OUT_CT``), block-averaged by integer factors (see ``REAL_CT``);
``--real-ct-only`` adds just those. ``--ship`` copies the written set into the package
(``tomodiff.phantoms.BENCHMARK_SET``), the copy an installed tomodiff reads; the tests check that the
two are the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from tomodiff.phantoms import BENCHMARK_SEEDS, BENCHMARK_SET, generate

from .volumes import shared_data

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
REGENERATE = "python -m benchmarks.make_benchmark_set"
HEAD = Path("vtk_headsq") / "head.mha"  # in the shared data folder, as is CT_CORPUS
CT_CORPUS = Path("ct_corpus")
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


def read_head(path) -> tuple[np.ndarray, dict]:
    """The VTK 'headsq' CT (93, 64, 64) of ``head.mha``, scaled to [0, 1] by its maximum (HU + 1000 = 3926)."""
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


def real_ct_volume(source: str, factors, edge: int, corpus) -> tuple[np.ndarray, dict]:
    """One real-CT benchmark volume (see ``REAL_CT``) from the ``corpus`` folder, in [0, 1], and its description."""
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


def add_real_ct(out_dir, corpus) -> dict:
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
    with h5py.File(path, "w", track_order=True) as h:
        d = h.create_dataset("volume", data=vol, compression="gzip", compression_opts=6, shuffle=True,
                             chunks=(min(16, vol.shape[0]),) + vol.shape[1:])
        for k, v in attrs.items():
            d.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v


def make(out_dir, data_dir=None) -> dict:
    """Generate every entry of ``SET`` into ``out_dir``, and with ``data_dir`` (the shared data
    folder) the real head and the real-CT group; returns the manifest."""
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
    if data_dir is not None:
        vol, meta = read_head(Path(data_dir) / HEAD)
        path = out / "real_head_vtk.h5"
        _write(path, vol, {"generator": "real", **meta})
        entries.append({"file": path.name, "generator": "real", "family": "real", "shape": list(vol.shape),
                        "seed": None, "parameters": meta, "sha256": array_sha256(vol),
                        "file_sha256": file_sha256(path)})
    manifest = {"version": VERSION, "dataset": "volume", "seed_range": [BENCHMARK_SEEDS.start, BENCHMARK_SEEDS.stop],
                "regenerate": REGENERATE, "entries": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if data_dir is not None:
        manifest = add_real_ct(out, Path(data_dir) / CT_CORPUS)
    return manifest


def ship(out_dir, package_dir=BENCHMARK_SET) -> None:
    """Copy the set in ``out_dir`` (its manifest and every file it lists) into the package's copy."""
    out = Path(out_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ["manifest.json"] + [e["file"] for e in manifest["entries"]]:
        shutil.copyfile(out / name, Path(package_dir) / name)


def load(path) -> np.ndarray:
    """Read the ``/volume`` dataset of a benchmark file as float32 ``(Z, Y, X)``."""
    with h5py.File(path, "r") as h:
        return h["volume"][()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?", type=Path, default=Path("phantoms"), help="(default: %(default)s)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="shared data folder with vtk_headsq/head.mha and ct_corpus/ (default: $TOMODIFF_SHARED_DATA)")
    ap.add_argument("--no-real", action="store_true", help="skip the real head CT volume and the real-CT group")
    ap.add_argument("--real-ct-only", action="store_true", help="only (re)write the real-CT group into the manifest")
    ap.add_argument("--ship", action="store_true", help=f"then copy the set into the package ({BENCHMARK_SET})")
    a = ap.parse_args(argv)
    if a.no_real and a.real_ct_only:
        ap.error("--no-real and --real-ct-only exclude each other")
    data = None if a.no_real else shared_data(a.data_dir)
    if data is not None:
        missing = [data / p for p in ([CT_CORPUS] if a.real_ct_only else [HEAD, CT_CORPUS]) if not (data / p).exists()]
        if missing:
            ap.error(f"{missing[0]}: not found (the real volumes come from there; --no-real goes without them)")
    m = add_real_ct(a.out_dir, data / CT_CORPUS) if a.real_ct_only else make(a.out_dir, data)
    total = sum((a.out_dir / e["file"]).stat().st_size for e in m["entries"])
    print(f"wrote {len(m['entries'])} volumes ({total / 1e6:.2f} MB) and manifest.json to {a.out_dir}")
    if a.ship:
        ship(a.out_dir)
        print(f"copied them to {BENCHMARK_SET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
