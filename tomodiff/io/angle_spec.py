"""Angles given on the command line or in a text file, with their units.

``START:STOP:COUNT`` gives ``COUNT`` angles from ``START`` to ``STOP``, both ends included (as
:func:`numpy.linspace`), in degrees unless a unit suffix says otherwise: ``0:60:61deg``,
``0:3.1416:181rad`` (``deg``/``degrees``/``rad``/``radians``, after COUNT). A path names a text file
of angles (whitespace- or comma-separated, ``#`` starts a comment), in degrees unless ``units`` says
``"rad"``. Angles that look like the other unit warn (:func:`tomodiff.io.scans.check_angle_units`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .scans import ScanFormatError, check_angle_units

#: more projections than any scan has: a larger COUNT is a typo, refused before numpy allocates it
MAX_ANGLES = 1_000_000
_UNITS = {"deg": "deg", "degree": "deg", "degrees": "deg", "rad": "rad", "radian": "rad", "radians": "rad"}
_RANGE = re.compile(r"^\s*([^:]+):([^:]+):\s*(\d+)\s*([a-zA-Z]*)\s*$")


def unit_name(units: str | None) -> str:
    """``"deg"`` or ``"rad"`` for any spelling of them (``None``: degrees), else ValueError."""
    key = (units or "deg").strip().lower()
    if key not in _UNITS:
        raise ValueError(f"angle units {units!r}: expected deg or rad")
    return _UNITS[key]


def to_radians(values, units: str, where: str) -> np.ndarray:
    """``values`` ``(A,)`` in ``units`` (``"deg"``/``"rad"``) as float64 radians, after the check
    that they do not look like the other unit (a warning naming ``where``)."""
    v = np.asarray(values, np.float64).ravel()
    u = unit_name(units)
    check_angle_units(v, u, where)
    return np.deg2rad(v) if u == "deg" else v


def has_unit_suffix(spec) -> bool:
    """Whether ``spec`` is a ``START:STOP:COUNTUNIT`` range with a unit suffix (``0:60:61deg``)."""
    m = _RANGE.match(str(spec))
    return bool(m and m.group(4)) and not Path(str(spec)).is_file()


def parse_angle_spec(spec, *, where: str = "--angles", units: str | None = None) -> np.ndarray:
    """Angles in radians ``(A,)`` from ``START:STOP:COUNT[UNIT]`` or a text file (see the module
    docstring). ``units``: the file's units (default degrees); a range carries its own suffix."""
    text = str(spec).strip()
    m = _RANGE.match(text)
    if m and not Path(text).is_file():
        suffix = m.group(4) or "deg"
        if suffix.lower() not in _UNITS:
            raise ValueError(f"{where} {text!r}: unknown unit {suffix!r} after COUNT; use deg or rad "
                             "(e.g. 0:60:61deg)")
        try:
            start, stop, count = float(m.group(1)), float(m.group(2)), int(m.group(3))
        except ValueError as err:
            raise ValueError(f"{where} {text!r}: expected START:STOP:COUNT[deg|rad] (e.g. 0:180:181 or "
                             "0:60:61deg)") from err
        if not 1 <= count <= MAX_ANGLES:
            raise ValueError(f"{where} {text!r}: COUNT must be from 1 to {MAX_ANGLES:,}")
        if not (np.isfinite(start) and np.isfinite(stop)):
            raise ValueError(f"{where} {text!r}: START and STOP must be finite numbers")
        return to_radians(np.linspace(start, stop, count), suffix, f"{where} {text}")
    if ":" in text and not Path(text).exists() and text.count(":") == 2:
        raise ValueError(f"{where} {text!r}: expected START:STOP:COUNT[deg|rad] (e.g. 0:180:181 or 0:60:61deg)")
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such angles file (or give {where} START:STOP:COUNT[deg|rad])")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ScanFormatError(f"{path}: not a UTF-8 text file of angles ({err.reason} at byte {err.start})") from None
    values = []
    for n, line in enumerate(lines, 1):
        try:
            values += [float(v) for v in line.split("#", 1)[0].replace(",", " ").split()]
        except ValueError as err:
            raise ScanFormatError(f"{path}:{n}: not a number ({err}); expected angles") from err
    if not values:
        raise ScanFormatError(f"{path}: holds no angles")
    if not np.isfinite(values).all():
        raise ScanFormatError(f"{path}: angles contain NaN or Inf")
    return to_radians(values, units or "deg", str(path))
