"""``tomodiff selftest --gpu``: refuses cleanly without a GPU; its code runs as a CPU dry run."""

import json

import pytest
import torch

from tomodiff.cli import main

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")


@pytest.fixture
def astra_cuda_forbidden(monkeypatch):
    """Any ASTRA projector or 3D call fails the test (without a GPU one would kill the process)."""
    astra = pytest.importorskip("astra")
    import astra.experimental

    def forbidden(*a, **k):
        raise AssertionError("an ASTRA projector was called")
    for name in ("direct_FP3D", "direct_BP3D"):
        monkeypatch.setattr(astra.experimental, name, forbidden)
    monkeypatch.setattr(astra, "create_projector", forbidden)


@no_gpu
def test_refuses_in_one_line_without_a_gpu(tmp_path, capsys, astra_cuda_forbidden):
    out = tmp_path / "gpu"
    assert main(["selftest", "--gpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch sees no CUDA GPU" in err and err.startswith("tomodiff selftest: error:")
    assert not out.exists()
    assert main(["selftest", "--gpu", "--device", "cpu", "--out", str(out)]) == 2
    assert "use --quick for a dry run" in capsys.readouterr().err


@no_gpu
def test_cpu_dry_run_reports_every_section(tmp_path, capsys, astra_cuda_forbidden):
    out = tmp_path / "gpu"
    assert main(["selftest", "--gpu", "--device", "cpu", "--quick", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / "gpu_check.json").read_text())
    assert "| cone |" in (out / "gpu_check.md").read_text()
    assert not report["astra_cuda"]
    by_backend = {}
    for row in report["agreement"]:
        by_backend.setdefault(row["backend"], []).append(row)
    assert all("skipped" in r for r in by_backend["astra"])
    for r in by_backend["matrix_free"] + by_backend["torch"]:
        assert r["dot_test"] < 1e-12 and r["fwd_vs_matrix_free"] < 1e-5 and r["adj_vs_matrix_free"] < 1e-5
    assert {r["geometry"] for r in report["throughput"]} == {"parallel", "cone"}
    assert all(r["fwd_adj_s"] > 0 for r in report["throughput"])
    assert [p["precision"] for p in report["pigdm"]] == ["fp32", "bf16"]
    assert all(p["seconds"] > 0 and p["nfe"] == 2 for p in report["pigdm"])
