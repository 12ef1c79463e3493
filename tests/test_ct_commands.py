"""The CT commands end to end on tiny volumes: simulate -> reconstruct -> files, --json outputs."""

import json

import h5py
import numpy as np
import pytest

from tomodiff.cli import main
from tomodiff.io import read_project
from tomodiff.io.volumes import load_volume


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_volume_specs(tmp_path):
    vol, desc = load_volume("foam:4:16")
    assert vol.shape == (16, 16, 16) and desc["family"] == "foam"
    np.save(tmp_path / "v.npy", vol.numpy())
    assert load_volume(str(tmp_path / "v.npy"))[0].shape == (16, 16, 16)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["deep/vol"] = vol.numpy()
    assert load_volume(f"{tmp_path / 'v.h5'}:deep/vol")[0].shape == (16, 16, 16)
    with pytest.raises(KeyError, match="dataset 'nope' is missing"):
        load_volume(f"{tmp_path / 'v.h5'}:nope")
    with pytest.raises(ValueError, match="unknown volume"):
        load_volume("not_a_volume")
    np.save(tmp_path / "flat.npy", np.ones((4, 4)))
    with pytest.raises(ValueError, match="expected a 3D"):
        load_volume(str(tmp_path / "flat.npy"))


def test_benchmark_set_entry_loads():
    vol, desc = load_volume("foam_64_a")
    assert vol.shape == (64, 64, 64) and desc["family"] == "foam" and 0 <= vol.min() and vol.max() <= 1


@pytest.mark.parametrize("geometry", ["parallel", "cone"])
def test_simulate_then_reconstruct(tmp_path, capsys, geometry):
    scan = tmp_path / "scan.h5"
    assert main(["simulate", "--phantom", "shepp_logan:3:16", "--views", "10", "--geometry", geometry,
                 "--out", str(scan), "--json"]) == 0
    sim = _json(capsys)
    assert sim["volume_shape"] == [16, 16, 16] and sim["sinogram_shape"][0] == 10
    data = read_project(scan)
    assert data.geometry["kind"] == geometry and data.reference.shape == (16, 16, 16)
    out = tmp_path / "fbp.h5"
    assert main(["reconstruct", str(scan), "--method", "fbp", "--out", str(out), "--json"]) == 0
    rec = _json(capsys)
    assert set(rec) >= {"method", "psnr", "ssim", "seconds", "nfe", "peak_memory_mb"}
    assert rec["psnr"] > 12 and rec["nfe"] == 0
    back = read_project(out)
    assert back.reconstruction["mean"].shape == (16, 16, 16) and back.provenance["method"] == "fbp"


def test_reconstruct_a_dxchange_scan_has_null_quality(shared_data, tmp_path, capsys):
    out = tmp_path / "tooth.h5"
    assert main(["reconstruct", str(shared_data / "aps_tooth" / "tooth.h5"), "--method", "fbp", "--thin", "4",
                 "--center-offset", "-23.5", "--out", str(out), "--json"]) == 0
    rec = _json(capsys)
    assert rec["psnr"] is None and rec["ssim"] is None
    mean = read_project(out).reconstruction["mean"]
    assert mean.shape == (2, 640, 640) and np.isfinite(mean).all()


def test_reconstruct_errors(tmp_path, capsys):
    assert main(["reconstruct", str(tmp_path / "missing.h5"), "--method", "fbp", "--out", str(tmp_path / "o.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    scan = tmp_path / "scan.h5"
    main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(scan)])
    capsys.readouterr()
    assert main(["reconstruct", str(scan), "--method", "pigdm", "--prior", "nope", "--out", str(tmp_path / "o.h5")]) == 2
    assert "no shipped prior named 'nope'" in capsys.readouterr().err


def test_diffusion_without_prior_uses_the_default(tmp_path):
    from tomodiff.io import read_project
    from tomodiff.priors import DEFAULT_PRIOR

    scan = tmp_path / "scan.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(scan)]) == 0
    out = tmp_path / "o.h5"
    assert main(["reconstruct", str(scan), "--method", "pigdm", "--steps", "2", "--samples", "1", "--out", str(out)]) == 0
    assert DEFAULT_PRIOR == "ct-slice"
    assert read_project(out).provenance["prior"]["name"] == "ct-slice"


def test_benchmark_writes_the_report(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--set", "foam:1:16,texture:2:16", "--views", "4,8", "--methods", "fbp,sirt",
                 "--out", str(out), "--json"]) == 0
    summary = _json(capsys)["summary"]
    assert {(r["views"], r["method"]) for r in summary} == {(4, "fbp"), (4, "sirt"), (8, "fbp"), (8, "sirt")}
    for name in ("results.csv", "report.md", "psnr_vs_views.png", "gallery.png"):
        assert (out / name).stat().st_size > 100
    assert len((out / "results.csv").read_text().strip().splitlines()) == 1 + 2 * 2 * 2


def test_demo_classical_methods_json(tmp_path, capsys):
    assert main(["demo", "--phantom", "shepp_logan:5:16", "--methods", "fbp,sirt", "--views", "8",
                 "--out-dir", str(tmp_path), "--json"]) == 0
    summary = _json(capsys)
    assert set(summary["methods"]) == {"fbp", "sirt"}
    for m in summary["methods"].values():
        assert set(m) >= {"psnr", "ssim", "seconds", "nfe"}
    assert (tmp_path / "demo.png").exists() and (tmp_path / "fbp.h5").exists()


def test_cli_method_choices_and_help_come_from_the_registry():
    import argparse

    from tomodiff import methods
    from tomodiff.commands import reconstruct as command

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    action = next(a for a in parser._subparsers._group_actions[0].choices["reconstruct"]._actions
                  if a.dest == "method")
    assert tuple(action.choices) == methods.names()
    assert all(f"{m.name}: {m.summary}" in action.help for m in methods.METHODS.values())


def test_classical_provenance_records_only_what_was_used(tmp_path, capsys):
    scan, out = tmp_path / "scan.h5", tmp_path / "tv.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(scan)]) == 0
    assert main(["reconstruct", str(scan), "--method", "tv", "--iters", "5", "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    prov = read_project(out).provenance
    assert not {"steps", "n_samples", "seed", "slab", "overlap", "z_coupling"} & set(prov)
    assert prov["prior"] == {} and prov["std_samples"] is None
    assert "n_iter" in prov["options"] and "lam" in prov["options"] and prov["scale"]["rule"].startswith("auto")
    # TV's weight comes from the file's noise level, so TV records it (and which rule chose the weight)
    assert prov["sigma_y"] == read_project(scan).provenance["sigma_y"] and prov["tv_weight"]["rule"] == "discrepancy"
    sirt = tmp_path / "sirt.h5"
    assert main(["reconstruct", str(scan), "--method", "sirt", "--iters", "5", "--out", str(sirt), "--json"]) == 0
    capsys.readouterr()
    assert not {"steps", "n_samples", "sigma_y", "seed", "slab", "overlap", "z_coupling", "tv_weight"} & \
        set(read_project(sirt).provenance)


def test_one_command_one_result_in_memory_and_streamed(tmp_path, capsys):
    """The same diffusion command writes the same volume, bit for bit, in memory and slab by slab
    (the path torchrun takes): one slab engine, one precision, one scale estimate."""
    scan = tmp_path / "scan.h5"
    assert main(["simulate", "--phantom", "foam:1:16", "--views", "6", "--out", str(scan)]) == 0
    common = ["reconstruct", str(scan), "--method", "pigdm", "--prior", "slice-64", "--steps", "2", "--samples", "2",
              "--slab", "8", "--threads", "1", "--json"]
    means = {}
    for name, extra in (("memory", []), ("stream", ["--stream"])):
        out = tmp_path / f"{name}.h5"
        assert main([*common, *extra, "--out", str(out)]) == 0
        capsys.readouterr()
        means[name] = read_project(out).reconstruction
    assert np.array_equal(means["memory"]["mean"], means["stream"]["mean"])
    assert np.array_equal(means["memory"]["std"], means["stream"]["std"])


def test_simulate_a_limited_arc(tmp_path, capsys):
    scan = tmp_path / "arc.h5"
    assert main(["simulate", "--phantom", "shepp_logan:3:16", "--views", "8", "--arc", "90", "--out", str(scan),
                 "--json"]) == 0
    data = read_project(scan)
    angles = np.asarray(data.geometry["angles"])
    np.testing.assert_allclose(angles, np.radians(90) * np.arange(8) / 8, atol=1e-12)  # [0, 90°), equally spaced
    assert data.provenance["arc_deg"] == 90
    capsys.readouterr()
    assert main(["simulate", "--phantom", "shepp_logan:3:16", "--arc", "200", "--out", str(tmp_path / "x.h5")]) == 2
    assert "at most 180 degrees for parallel beam" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
