"""``tomodiff cache info|clear``: the on-disk cache of projector matrices (:mod:`tomodiff.ct.disk_cache`)."""

from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser("cache", help="show or clear the on-disk cache of projector matrices",
                       description="Projector system matrices are kept on disk between calls, so a geometry "
                                   "already seen starts fast. 'info' shows the folder (TOMODIFF_CACHE; off, none "
                                   "or 0 switch it off), its files, their size and the size bound "
                                   "(TOMODIFF_CACHE_MAX); 'clear' removes every cached matrix.")
    p.add_argument("action", choices=["info", "clear"], help="info: where and how much; clear: remove every matrix")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=run)


def collect() -> dict:
    from ..ct import disk_cache  # start-up time: torch

    folder = disk_cache.cache_dir()
    files = disk_cache.entries()
    return {"folder": None if folder is None else str(folder), "enabled": folder is not None,
            "files": len(files), "bytes": sum(size for _, size, _ in files),
            "max_bytes": disk_cache.max_bytes(), "min_seconds": disk_cache.min_seconds()}


def run(args) -> int:
    from ..ct import disk_cache  # start-up time: torch

    info = collect()
    if args.action == "clear":
        n, size = disk_cache.clear()
        out = {"folder": info["folder"], "enabled": info["enabled"], "removed_files": n, "removed_bytes": size}
        if args.json:
            print(json.dumps(out, indent=2))
        elif not info["enabled"]:
            print("matrix cache: off (TOMODIFF_CACHE); nothing to clear")
        else:
            print(f"removed {n} file{'s' * (n != 1)} ({_size(size)}) from {info['folder']}")
        return 0
    if args.json:
        print(json.dumps(info, indent=2))
    elif not info["enabled"]:
        print("matrix cache: off (TOMODIFF_CACHE)")
    else:
        print(f"matrix cache: {info['folder']}\n"
              f"  {info['files']} file{'s' * (info['files'] != 1)}, {_size(info['bytes'])} "
              f"of at most {_size(info['max_bytes'])} (TOMODIFF_CACHE_MAX; least recently used removed first)\n"
              f"  stores matrices whose build took >= {info['min_seconds']:g} s (TOMODIFF_CACHE_MIN_SECONDS)")
    return 0


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
