"""``tomodiff selftest --gpu``: the GPU check, one command that writes JSON and Markdown.

On one CUDA GPU, in a few minutes, it reports:

1. ``agreement``: ASTRA CUDA 3D (parallel and cone) against the torch backends (cached matrix and
   matrix-free) on the same volumes: relative differences of forward and adjoint, and every
   backend's dot test (ASTRA's 3D pair is not an exact transpose: its own tests allow 0.1).
2. ``throughput``: forward + adjoint at 256³ / 360 views (parallel and cone), ASTRA CUDA against
   the torch backends (the cached matrix only where it fits the memory budget).
3. ``pigdm``: ΠGDM reconstructions at 128³ with 50 NFE, fp32 and bf16 (time, PSNR, peak memory).

Without a usable GPU it refuses with one line before anything runs (and it never calls ASTRA's CUDA
code unless ``astra.use_cuda()`` is True). ``--device cpu --quick`` runs the same code at toy sizes
(ASTRA reported as skipped): the CPU tests use it to keep this path working.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

DEFAULT_OUT = Path("benchmarks/results/gpu")
FULL = {"agree_n": 64, "agree_views": 90, "n": 256, "views": 360, "pigdm_n": 128, "nfe": 50, "repeats": 3}
QUICK = {"agree_n": 12, "agree_views": 8, "n": 16, "views": 12, "pigdm_n": 16, "nfe": 2, "repeats": 1}


def add_parser(sub):
    p = sub.add_parser("selftest", help="the GPU check: ASTRA CUDA vs torch, throughput, PiGDM fp32/bf16",
                       description=__doc__.split("\n\n")[0] + " Refuses without a GPU.")
    p.add_argument("--gpu", action="store_true", required=True, help="run the GPU check (the only suite)")
    p.add_argument("--device", default="cuda", help="torch device (default: %(default)s); "
                                                    "cpu only as a dry run with --quick")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="toy sizes (seconds): checks that the code runs")
    p.add_argument("--prior", default="slice-64", help="prior for the PiGDM rows (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from ._common import check_output_dir, device  # start-up time

    dev = device(args.device)  # cuda without a GPU: a one-line error, before anything else
    if dev.type != "cuda" and not args.quick:
        raise ValueError(f"--device {args.device}: the full check is for a CUDA GPU; "
                         "use --quick for a dry run on the CPU")
    out = check_output_dir(args.out)

    def save(report):  # after every section, so a run cut short still leaves what it measured
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (out / "gpu_check.md").write_text(markdown(report))

    report = gpu_check(dev, QUICK if args.quick else FULL, prior=args.prior, save=save)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(markdown(report))
        print(f"written: {out / 'gpu_check.json'}, {out / 'gpu_check.md'}")
    return 0


# ---------------------------------------------------------------------- the checks
def gpu_check(dev, sizes: dict, prior: str = "slice-64", save=lambda report: None) -> dict:
    """Run the three sections on ``dev``; ``save(report)`` is called after each (and at the end)."""
    import torch  # start-up time

    from ..ct import available_backends  # start-up time
    t0 = time.perf_counter()
    astra_cuda = dev.type == "cuda" and available_backends()["astra_cuda"]
    report = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (dry run)",
        "torch": torch.__version__, "astra_cuda": astra_cuda, "sizes": sizes,
        "agreement": [], "throughput": [], "pigdm": [],
    }
    for kind in ("parallel", "cone"):
        report["agreement"] += _agreement(kind, sizes["agree_n"], sizes["agree_views"], dev, astra_cuda)
        save(report)
    for kind in ("parallel", "cone"):
        report["throughput"] += _throughput(kind, sizes["n"], sizes["views"], dev, astra_cuda, sizes["repeats"])
        save(report)
    for precision in ("fp32", "bf16"):
        report["pigdm"].append(_pigdm(sizes["pigdm_n"], sizes["nfe"], dev, precision, prior))
        report["seconds"] = time.perf_counter() - t0
        save(report)
    return report


def _geometry(kind, n, views):
    from ..ct.simulate import scan_geometry  # start-up time
    return scan_geometry((n, n, n), views, kind)


def _backends(g, astra_cuda):
    """Backends to run on ``g``: ASTRA only with a usable GPU, the matrix only within its budget."""
    from ..ct.backends.matrix_cache import DEFAULT_LIMIT  # start-up time
    from ..ct.backends.torch_backend import matrix_bytes  # start-up time
    names = ["matrix_free"]
    if matrix_bytes(g) <= DEFAULT_LIMIT:
        names.append("torch")
    if astra_cuda:
        names.append("astra")
    return names


def _rel(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _agreement(kind, n, views, dev, astra_cuda) -> list[dict]:
    import torch  # start-up time

    from ..ct import Projector  # start-up time
    from ..operators import dot_test  # start-up time
    g = _geometry(kind, n, views)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, *g.volume_shape, generator=gen).to(dev)
    y = torch.rand(1, 1, *g.sino_shape, generator=gen).to(dev)
    ref = Projector(g, "matrix_free")
    ref_fwd, ref_adj = ref(x), ref.T(y)
    rows = []
    for name in _backends(g, astra_cuda) + ([] if astra_cuda else ["astra"]):
        row = {"geometry": kind, "shape": list(g.volume_shape), "views": views, "backend": name}
        if name == "astra" and not astra_cuda:
            rows.append({**row, "skipped": "astra.use_cuda() is False (or no CUDA device): ASTRA CUDA not called"})
            continue
        A = Projector(g, name)
        row["fwd_vs_matrix_free"] = _rel(A(x), ref_fwd)
        row["adj_vs_matrix_free"] = _rel(A.T(y), ref_adj)
        dtype = torch.float32 if name == "astra" else torch.float64
        row["dot_test"] = float(dot_test(A, dtype=dtype, device=dev))
        row["dot_dtype"] = str(dtype).replace("torch.", "")
        rows.append(row)
    return rows


def _sync(dev):
    import torch  # start-up time
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _throughput(kind, n, views, dev, astra_cuda, repeats) -> list[dict]:
    import torch  # start-up time

    from ..ct import Projector  # start-up time
    g = _geometry(kind, n, views)
    x = torch.rand(1, 1, *g.volume_shape, generator=torch.Generator().manual_seed(0)).to(dev)
    rows = []
    for name in _backends(g, astra_cuda):
        A = Projector(g, name)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        _sync(dev)
        t0 = time.perf_counter()
        A.T(A(x))  # first call: includes the torch matrix build
        _sync(dev)
        first = time.perf_counter() - t0
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            A.T(A(x))
            _sync(dev)
            best = min(best, time.perf_counter() - t0)
        rows.append({"geometry": kind, "shape": list(g.volume_shape), "views": views, "det": list(g.det_shape),
                     "backend": name, "first_s": first, "fwd_adj_s": best,
                     "torch_peak_MiB": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None})
        del A
    astra_t = next((r["fwd_adj_s"] for r in rows if r["backend"] == "astra"), None)
    for r in rows:
        r["vs_astra"] = r["fwd_adj_s"] / astra_t if astra_t else None
    return rows


def _pigdm(n, nfe, dev, precision, prior_name) -> dict:
    import inspect  # start-up time

    import torch  # start-up time

    from ..ct import Projector  # start-up time
    from ..ct.simulate import simulate_scan  # start-up time
    from ..io.volumes import load_volume  # start-up time
    from ..priors import load  # start-up time
    from ..recon import reconstruct  # start-up time
    from ..recon.metrics import psnr  # start-up time
    vol, _ = load_volume("foam_128")
    c = [(s - n) // 2 for s in vol.shape]
    vol = vol[c[0]:c[0] + n, c[1]:c[1] + n, c[2]:c[2] + n].contiguous()
    y, g, sigma_y = simulate_scan(vol, views=32, noise=0.01)
    A = Projector(g, device=dev)
    prior = load(prior_name, device=dev)
    kwargs = dict(method="pigdm", prior=prior, steps=nfe, sigma_y=sigma_y, progress=False)
    row = {"shape": [n] * 3, "views": 32, "nfe": nfe, "precision": precision, "backend": A.backend}
    if "precision" in inspect.signature(reconstruct).parameters:
        kwargs["precision"] = precision
        row["how"] = "reconstruct(precision=...)"
        ctx = _nullcontext()
    elif precision == "bf16":
        row["how"] = "torch.autocast(bfloat16) around reconstruct"
        ctx = torch.autocast(dev.type, dtype=torch.bfloat16)
    else:
        row["how"] = "plain fp32"
        ctx = _nullcontext()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _sync(dev)
    t0 = time.perf_counter()
    with ctx:
        rec = reconstruct(A, y.to(dev), **kwargs)
    _sync(dev)
    row["seconds"] = time.perf_counter() - t0
    mean = rec.mean[0, 0].float().cpu()
    row["psnr_db"] = float(psnr(mean.numpy(), vol.numpy(), data_range=float(vol.max() - vol.min())))
    row["torch_peak_MiB"] = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    return row


def _nullcontext():
    import contextlib  # start-up time
    return contextlib.nullcontext()


# ---------------------------------------------------------------------- report
def markdown(r: dict) -> str:
    def f(v, spec=".3g"):
        return "" if v is None else format(v, spec)
    lines = [f"# GPU check: {r['device']}", "",
             f"torch {r['torch']}, ASTRA CUDA usable: {r['astra_cuda']}, total {r.get('seconds', 0):.0f} s. "
             "Produced by `tomodiff selftest --gpu` (scripts/gpu_check.sh).", "",
             "## ASTRA CUDA 3D against the torch backends", "",
             "| geometry | shape | views | backend | fwd vs matrix_free | adj vs matrix_free | dot test |",
             "|---|---|---:|---|---:|---:|---:|"]
    for a in r["agreement"]:
        if "skipped" in a:
            lines.append(f"| {a['geometry']} | {a['shape']} | {a['views']} | {a['backend']} | skipped: {a['skipped']} | | |")
        else:
            lines.append(f"| {a['geometry']} | {a['shape']} | {a['views']} | {a['backend']} | {f(a['fwd_vs_matrix_free'])} | "
                         f"{f(a['adj_vs_matrix_free'])} | {f(a['dot_test'])} ({a['dot_dtype']}) |")
    lines += ["", "## Projector throughput (forward + adjoint, one volume, float32)", "",
              "| geometry | shape | views | backend | first call s | fwd+adj s | vs ASTRA | torch peak MiB |",
              "|---|---|---:|---|---:|---:|---:|---:|"]
    for t in r["throughput"]:
        lines.append(f"| {t['geometry']} | {t['shape']} | {t['views']} | {t['backend']} | {f(t['first_s'])} | "
                     f"{f(t['fwd_adj_s'])} | {f(t['vs_astra'])} | {f(t['torch_peak_MiB'], '.0f')} |")
    lines += ["", "## ΠGDM", "", "| shape | views | NFE | precision | how | backend | s | PSNR dB | torch peak MiB |",
              "|---|---:|---:|---|---|---|---:|---:|---:|"]
    for p in r["pigdm"]:
        lines.append(f"| {p['shape']} | {p['views']} | {p['nfe']} | {p['precision']} | {p['how']} | {p['backend']} | "
                     f"{f(p['seconds'])} | {f(p['psnr_db'], '.2f')} | {f(p['torch_peak_MiB'], '.0f')} |")
    return "\n".join(lines) + "\n"
