"""TIFF-stack scans: a simulated scan (Poisson counts, flats, darks) written both as TIFF folders and
as a DXchange file must read, and reconstruct from the shell, identically; bad stacks fail in one line
naming the file."""

import h5py
import numpy as np
import pytest
import tifffile

from tomodiff.cli import main
from tomodiff.io import ScanFormatError, normalize, read_dxchange
from tomodiff.io.tiff_stack import parse_angles, read_tiff_stack, scan_folder, tiff_files, write_tiff_stack

ANGLES = "0:180:19"  # 19 angles, 10° apart, both ends included
I0, DARK = 4000.0, 100.0


def _ball(z=4, n=24):
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    disk = (np.hypot(x, y) < n / 3).astype(np.float32) * 0.05  # 1/pixel: ~45% transmission at the centre
    return np.repeat(disk[None], z, axis=0)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """The same raw scan as TIFF folders and as a DXchange file; and the volume it was simulated from."""
    import torch

    from tomodiff.ct import Projector, parallel_beam

    root = tmp_path_factory.mktemp("tiffscan")
    vol = _ball()
    Z, n = vol.shape[0], vol.shape[1]
    angles = np.deg2rad(np.linspace(0, 180, 19))
    geometry = parallel_beam((Z, n, n), angles, det_shape=(Z, 36))
    p = Projector(geometry, backend="torch")(torch.from_numpy(vol)[None, None])[0, 0].numpy()
    rng = np.random.default_rng(0)
    gain = 1 + 0.1 * rng.random(p.shape[1:])  # uneven detector response: flats must correct it
    counts = rng.poisson(I0 * gain * np.exp(-p) + DARK).astype(np.uint16)
    flats = rng.poisson(I0 * gain + DARK, size=(3, *p.shape[1:])).astype(np.uint16)
    darks = rng.poisson(DARK, size=(2, *p.shape[1:])).astype(np.uint16)
    write_tiff_stack(root / "scan" / "proj", counts, prefix="proj")
    write_tiff_stack(root / "scan" / "flat", flats, prefix="flat")
    write_tiff_stack(root / "scan" / "dark", darks, prefix="dark")
    (root / "scan" / "angles.txt").write_text("# degrees\n" + "\n".join(f"{a:g}" for a in np.linspace(0, 180, 19)))
    h5 = root / "scan.h5"
    with h5py.File(h5, "w") as f:
        f["exchange/data"], f["exchange/data_white"], f["exchange/data_dark"] = counts, flats, darks
        f["exchange/theta"] = np.linspace(0, 180, 19)
        f["exchange/theta"].attrs["units"] = "degrees"
    return root, vol, h5


def test_tiff_stack_reads_as_the_dxchange_file(scan):
    root, _, h5 = scan
    tiff = read_tiff_stack(root / "scan" / "proj", angles=ANGLES, flats=root / "scan" / "flat",
                           darks=root / "scan" / "dark")
    ref = read_dxchange(h5)
    for name in ("projections", "flats", "darks"):
        np.testing.assert_array_equal(getattr(tiff, name), getattr(ref, name))
        assert getattr(tiff, name).dtype == np.float32
    np.testing.assert_allclose(tiff.angles, ref.angles, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(normalize(tiff), normalize(ref))
    # the angles file and a glob give the same scan
    by_glob = read_tiff_stack(str(root / "scan" / "proj" / "proj_*.tif"), angles=root / "scan" / "angles.txt")
    np.testing.assert_array_equal(by_glob.projections, ref.projections)
    np.testing.assert_allclose(by_glob.angles, ref.angles, atol=1e-12)


def test_scan_folder_layout_is_found(scan, tmp_path):
    root = scan[0]
    layout = scan_folder(root / "scan")
    assert layout.projections.name == "proj" and layout.flats.name == "flat" and layout.darks.name == "dark"
    assert layout.angles.name == "angles.txt"
    assert scan_folder(root / "scan" / "proj") is None  # no angles file: not a scan folder
    assert scan_folder(tmp_path / "missing") is None and scan_folder(root / "scan.h5") is None


def _reconstruct(args, capsys):
    assert main(["reconstruct", *map(str, args), "--method", "sirt", "--iters", "30", "--json"]) == 0
    capsys.readouterr()


def test_tiff_scan_reconstructs_as_the_hdf5_scan(scan, tmp_path, capsys):
    from tomodiff.io import read_project

    root, vol, h5 = scan
    common = ["--thin", "2", "--rows", "1:3", "--center-offset", "0.5", "--pixel-size", "0.5"]  # 0.5 mm pixels
    tiff_args = [root / "scan" / "proj", "--flats", root / "scan" / "flat", "--darks", root / "scan" / "dark",
                 "--angles", ANGLES]
    _reconstruct([*tiff_args, *common, "--out", tmp_path / "tiff.h5"], capsys)
    _reconstruct([h5, *common, "--out", tmp_path / "hdf5.h5"], capsys)
    _reconstruct([root / "scan", *common, "--out", tmp_path / "folder.h5"], capsys)  # proj/ flat/ dark/ angles.txt
    tiff, hdf5 = read_project(tmp_path / "tiff.h5"), read_project(tmp_path / "hdf5.h5")
    folder = read_project(tmp_path / "folder.h5")
    assert tiff.sinogram.shape == (10, 2, 36)  # every 2nd of 19 angles, rows 1 and 2
    np.testing.assert_array_equal(tiff.sinogram, hdf5.sinogram)
    np.testing.assert_array_equal(tiff.reconstruction["mean"], hdf5.reconstruction["mean"])
    np.testing.assert_array_equal(folder.reconstruction["mean"], hdf5.reconstruction["mean"])
    assert tiff.geometry["center_offset"] == 0.5 and tiff.geometry["voxel_size"] == 0.5
    # and it is a reconstruction of the object (the centre offset of 0.5 px blurs it a little)
    mean = tiff.reconstruction["mean"]  # (2, 36, 36): the raw-scan volume spans the detector width
    inner, ref = mean[:, 6:30, 6:30] * 0.5, vol[1:3]  # 1/mm back to 1/pixel
    err = np.linalg.norm(inner - ref) / np.linalg.norm(ref)
    assert err < 0.35, err


def test_natural_order_and_multipage_files(tmp_path):
    for i in (10, 2, 1):
        tifffile.imwrite(tmp_path / f"p_{i}.tif", np.full((2, 3), i, np.uint16))
    assert [p.name for p in tiff_files(tmp_path)] == ["p_1.tif", "p_2.tif", "p_10.tif"]
    multi = tmp_path / "multi" / "stack.tiff"
    multi.parent.mkdir()
    tifffile.imwrite(multi, np.arange(24, dtype=np.float32).reshape(4, 2, 3), photometric="minisblack")
    scan = read_tiff_stack(multi, angles="0:90:4")
    assert scan.projections.shape == (4, 2, 3) and np.allclose(np.rad2deg(scan.angles), [0, 30, 60, 90])


def test_angles_spec_and_file(tmp_path):
    np.testing.assert_allclose(np.rad2deg(parse_angles("0:180:181")), np.arange(181.0), atol=1e-12)
    path = tmp_path / "a.txt"
    path.write_text("0, 1.5\n# comment\n3 4.5  # trailing\n")
    np.testing.assert_allclose(np.rad2deg(parse_angles(path)), [0, 1.5, 3, 4.5])
    with pytest.raises(ValueError, match="START:STOP:COUNT"):
        parse_angles("0:180:x")
    (tmp_path / "bad.txt").write_text("0\n1\nten\n")
    with pytest.raises(ScanFormatError, match=r"bad.txt:3: not a number"):
        parse_angles(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="no such angles file"):
        parse_angles(tmp_path / "none.txt")


def _stack(folder, n=3, shape=(2, 3), dtype=np.uint16):
    return write_tiff_stack(folder, np.ones((n, *shape), dtype))


@pytest.mark.parametrize("case, message", [
    ("shape", r"proj_0002.tif: image shape \(2, 4\) differs from img_0000.tif's \(2, 3\)"),
    ("dtype", r"proj_0002.tif: dtype float32 differs from img_0000.tif's uint16"),
    ("more angles", r"proj: 3 projection images but 4 angles \(--angles 0:3:4\)"),
    ("fewer angles", r"proj: 3 projection images but 2 angles \(--angles 0:3:2\)"),
    ("flat shape", r"flat/img_0000.tif: flat image shape \(3, 3\) differs from the projections' \(2, 3\)"),
    ("colour", r"proj_0002.tif: a colour image"),
    ("empty glob", r"nothing_\*.tif: the pattern matches no files"),
    ("empty folder", r"empty: the folder holds no .tif/.tiff files"),
])
def test_bad_stacks_fail_in_one_line_naming_the_file(tmp_path, capsys, case, message):
    proj = tmp_path / "proj"
    _stack(proj)
    angles, extra, spec = "0:3:3", [], proj
    if case == "shape":
        tifffile.imwrite(proj / "proj_0002.tif", np.ones((2, 4), np.uint16))
    elif case == "dtype":
        tifffile.imwrite(proj / "proj_0002.tif", np.ones((2, 3), np.float32))
    elif case == "colour":
        tifffile.imwrite(proj / "proj_0002.tif", np.ones((2, 3, 3), np.uint8), photometric="rgb")
    elif case == "more angles":
        angles = "0:3:4"
    elif case == "fewer angles":
        angles = "0:3:2"
    elif case == "flat shape":
        _stack(tmp_path / "flat", n=2, shape=(3, 3))
        extra = ["--flats", tmp_path / "flat"]
    elif case == "empty glob":
        spec = tmp_path / "nothing_*.tif"
    elif case == "empty folder":
        spec = tmp_path / "empty"
        spec.mkdir()
    with pytest.raises(ScanFormatError, match=message):
        read_tiff_stack(spec, angles=angles, flats=extra[1] if extra else None)
    code = main(["reconstruct", str(spec), "--angles", angles, *map(str, extra), "--method", "fbp",
                 "--out", str(tmp_path / "r.h5")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("tomodiff reconstruct: error:"), err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "r.h5").exists()


def test_cli_asks_for_angles_and_refuses_tiff_options_on_hdf5(scan, tmp_path, capsys):
    root, _, h5 = scan
    assert main(["reconstruct", str(root / "scan" / "proj"), "--method", "fbp", "--out", str(tmp_path / "r.h5")]) == 2
    assert "a TIFF stack needs --angles START:STOP:COUNT" in capsys.readouterr().err
    assert main(["reconstruct", str(h5), "--angles", ANGLES, "--method", "fbp", "--out", str(tmp_path / "r.h5")]) == 2
    err = capsys.readouterr().err
    assert "--angles" in err and "for TIFF stacks" in err and "\n" not in err.strip()
