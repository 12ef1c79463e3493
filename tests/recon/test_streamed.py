"""File-to-file reconstruction: a volume larger than the memory limit streams through, a full disk
leaves earlier results intact, an output open in a reader is replaced whole."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.io import ProjectData, read_project, write_project


LIMITED = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from tomodiff.recon.streamed import reconstruct_file

    small, big, out, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    reconstruct_file(small, out + ".warm.h5", method="fbp", slab=8, progress=False)  # caches, allocator arenas

    def vm_bytes():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize"))

    limit = vm_bytes() + budget
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    summary = reconstruct_file(big, out, method="fbp", slab=8, progress=False)
    # the control: the in-memory path needs the whole volume and fails under the same limit
    try:
        import torch
        from tomodiff.ct import Projector
        from tomodiff.io import read_project
        from tomodiff.recon import reconstruct
        d = read_project(big)
        reconstruct(Projector(d.geometry_object()), torch.from_numpy(d.sinogram)[None, None], method="fbp",
                    progress=False)
        control = "succeeded"
    except (MemoryError, RuntimeError) as err:
        control = "failed: " + str(err).splitlines()[0][:120]
    print(json.dumps({"slabs": summary["slabs"], "control": control, "limit_above_start": budget}))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="address-space limits via /proc and RLIMIT_AS")
def test_a_volume_larger_than_the_memory_limit_streams_through(tmp_path):
    """FBP of 512 x 128 x 128 (32 MiB of float32) with 24 MiB of address space to spare: only the
    streaming path fits (the in-memory path, run as a control under the same limit, does not)."""
    Z, N, views = 512, 128, 32
    rng = np.random.default_rng(0)
    for name, z in (("small.h5", 16), ("big.h5", Z)):
        geom = parallel_beam((z, N, N), np.linspace(0, np.pi, views, endpoint=False))
        write_project(tmp_path / name, ProjectData(sinogram=rng.random(geom.sino_shape, dtype=np.float32),
                                                   geometry=geom))
    volume_bytes, budget = Z * N * N * 4, 24 * 2**20
    assert budget < volume_bytes
    # no matrix cache: a cached matrix is read back by mmap, whose mapping counts against RLIMIT_AS like the
    # built matrix plus its file; this test measures the streaming path's own memory
    env = {"OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "1", "PATH": "/usr/bin:/bin", "TOMODIFF_CACHE": "off"}
    run = subprocess.run([sys.executable, "-c", LIMITED, str(tmp_path / "small.h5"), str(tmp_path / "big.h5"),
                          str(tmp_path / "out.h5"), str(budget)], env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["slabs"] == Z // 8 and result["control"].startswith("failed"), result
    # and the streamed result is the FBP: slices 0:8 against an FBP of those slices alone
    from tomodiff.recon import fbp
    with h5py.File(tmp_path / "out.h5") as f:
        mean = f["reconstruction/mean"]
        assert mean.shape == (Z, N, N) and mean.chunks[0] <= 8
        first = mean[0:8]
        y = torch.from_numpy(f["sinogram"][:, 0:8])[None, None]
        geom = parallel_beam((Z, N, N), np.linspace(0, np.pi, views, endpoint=False))
    expected = fbp(Projector(geom.rows(0, 8)), y, filter="hann")[0, 0].numpy()
    np.testing.assert_allclose(first, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from tomodiff.recon.streamed import reconstruct_file
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
    try:
        reconstruct_file(sys.argv[1], sys.argv[2], method="fbp", slab=2, progress=False)
    except Exception as err:
        print(type(err).__name__ + ": " + str(err))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="file-size limit via RLIMIT_FSIZE")
def test_a_full_disk_leaves_the_earlier_output_and_the_slabs(tmp_path):
    from tomodiff.recon.streamed import default_store, reconstruct_file

    geom = parallel_beam((16, 64, 64), np.linspace(0, np.pi, 16, endpoint=False))
    y = np.random.default_rng(4).random(geom.sino_shape, dtype=np.float32)
    write_project(tmp_path / "in.h5", ProjectData(sinogram=y, geometry=geom))
    out = tmp_path / "out.h5"
    out.write_bytes(b"an earlier result")
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    run = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "in.h5"), str(out), str(64 * 1024)],
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "TOMODIFF_CACHE": os.environ.get("TOMODIFF_CACHE", "off")}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("OutputWriteError: could not write") and "not enough space" in run.stdout
    assert "is unchanged and the finished slabs stay in" in run.stdout
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert len(list(default_store(out).glob("slab_*.pt"))) == 8
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no half-written file left
    summary = reconstruct_file(tmp_path / "in.h5", out, method="fbp", slab=2, progress=False)  # space again
    assert summary["slabs"] == 8 and read_project(out).reconstruction["mean"].shape == (16, 64, 64)
    assert not default_store(out).exists()


def test_an_output_open_in_a_reader_is_replaced_whole(tmp_path):
    """A viewer holding the old OUT open (HDF5 locks it) keeps reading the old file; the new one
    replaces it atomically (a rename), never a half-written mix."""
    from tomodiff.recon.streamed import reconstruct_file

    geom = parallel_beam((6, 16, 16), np.linspace(0, np.pi, 8, endpoint=False))
    write_project(tmp_path / "in.h5", ProjectData(sinogram=np.ones(geom.sino_shape, np.float32), geometry=geom))
    out = tmp_path / "out.h5"
    write_project(out, ProjectData(reconstruction={"mean": np.full((6, 16, 16), 7.0, np.float32)}))
    with h5py.File(out, "r") as viewer:
        reconstruct_file(tmp_path / "in.h5", out, method="fbp", slab=4, progress=False)
        assert (viewer["reconstruction/mean"][()] == 7.0).all()
    assert not (read_project(out).reconstruction["mean"] == 7.0).all()
