"""The benchmark's tables, groups and the measured-scan rows."""

import json

import pytest

from tomodiff.cli import main
from tomodiff.demos.benchmark import REAL_GROUP, Row, summary_table, write_markdown


def _row(group, volume, views, method, psnr):
    return Row(group, volume, views, method, psnr, 0.5, 0.1, 1.0, 0, 1.0)


def test_summary_keeps_groups_apart_and_orders_rows():
    rows = [_row("64×64×64", "a", 8, "tv", 20.0), _row("64×64×64", "b", 8, "tv", 22.0),
            _row("64×64×64", "a", 4, "tv", 10.0), _row("64×64×64", "a", 4, "fbp", 9.0),
            _row("128×128×128", "c", 8, "tv", 30.0)]
    table = summary_table(rows)
    keys = [(r["group"], r["views"], r["method"]) for r in table]
    # groups as they appeared, views ascending, methods in run order
    assert keys == [("64×64×64", 4, "tv"), ("64×64×64", 4, "fbp"), ("64×64×64", 8, "tv"), ("128×128×128", 8, "tv")]
    assert table[2]["psnr"] == 21.0 and table[2]["n"] == 2 and table[3]["psnr"] == 30.0


def test_markdown_has_one_section_per_group(tmp_path):
    rows = [_row("64×64×64", "a", 8, "tv", 20.0), _row(REAL_GROUP, "scan", 12, "tv", 30.0)]
    text = write_markdown(rows, {"command": "tomodiff benchmark"}, tmp_path / "r.md").read_text()
    assert "## 64×64×64: mean over 1 volume" in text and f"## {REAL_GROUP}: mean over 1 volume" in text
    assert text.index("64×64×64") < text.index(REAL_GROUP)


def test_real_scan_rows(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TOMODIFF_SHARED_DATA", str(shared_data))
    out = tmp_path / "bench"
    assert main(["benchmark", "--set", "none", "--real", "diamond_i13", "--methods", "fbp,sirt",
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    got = {(r["group"], r["views"], r["method"]): r["psnr"] for r in summary}
    assert set(got) == {(REAL_GROUP, v, m) for v in (12, 23) for m in ("fbp", "sirt")}
    # against the full-angle SIRT, sparse SIRT beats sparse FBP, and more angles help FBP
    assert got[(REAL_GROUP, 12, "sirt")] > got[(REAL_GROUP, 12, "fbp")]
    assert got[(REAL_GROUP, 23, "fbp")] > got[(REAL_GROUP, 12, "fbp")]
    assert (out / "gallery.png").stat().st_size > 100


@pytest.mark.parametrize("spec, n", [("64", 8), ("128", 2), ("real_ct", 4), ("all", 15), ("foam:1:16,texture:2:16", 2)])
def test_set_shorthands(spec, n):
    from tomodiff.commands.benchmark import _volumes
    from tomodiff.io.volumes import benchmark_manifest

    assert len(_volumes(spec, benchmark_manifest)) == n


def test_nothing_to_benchmark_is_an_error(tmp_path, capsys):
    assert main(["benchmark", "--set", "none", "--out", str(tmp_path / "b")]) == 2
    assert "nothing to benchmark" in capsys.readouterr().err


def test_groups_keep_real_volumes_apart_from_phantoms():
    from tomodiff.demos.benchmark import volume_group
    from tomodiff.io.volumes import load_volume

    head, desc = load_volume("real_head_vtk")
    assert volume_group(head.shape, desc) == "real CT volume 93×64×64"
    foam, desc = load_volume("foam:1:16")
    assert volume_group(foam.shape, desc) == "phantoms 16×16×16"
