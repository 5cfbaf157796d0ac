"""What a figure draws, as data: extracted from the matplotlib Figure, carried inside its PNG, compared.

Library (``figures.py`` saves every figure through ``save_png``). A PNG's pixels depend on the
font rasteriser and on the last bits of every plotted value, so two correct renderings of the same
data may differ by a few anti-aliased pixels; the data a figure draws do not. ``extract`` walks the
Figure before it is saved: per axes its title, labels, scales and limits, every line (label, gid,
style, colour, x and y), every shaded span, horizontal segment and scatter, every text and the
legend's entries; ``save_png`` writes the PNG with that record in a compressed ``zTXt`` chunk
(keyword ``plasticity:drawn``), so the file says what it shows; ``read_png`` gets it back and
``compare`` reports every difference beyond a relative tolerance (default 1e-6: the last bits of a
fitted curve may differ between machines, a moved point may not).

Artists carry a ``gid`` where a test needs to find them (``figures.py`` names them, e.g.
``points SFT889K@360``); the record keeps the drawing order.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any

KEYWORD = b"plasticity:drawn"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DIGITS = 10          # significant digits kept per value: far below any visible difference


class DrawnError(ValueError):
    """A PNG without the drawn-data record, or a malformed one; the message names the file."""


def _num(v) -> float | None:
    v = float(v)
    return None if not math.isfinite(v) else float(f"{v:.{DIGITS}g}")


def _nums(values) -> list:
    import numpy as np

    arr = np.ma.filled(np.ma.asarray(values, dtype=float), np.nan)
    return [_num(v) for v in np.ravel(arr)]


def _color(c) -> str:
    from matplotlib.colors import to_hex

    return to_hex(c, keep_alpha=False)


def _line(line) -> dict:
    return {"gid": line.get_gid(), "label": line.get_label(), "ls": line.get_linestyle(),
            "marker": str(line.get_marker()), "color": _color(line.get_color()),
            "x": _nums(line.get_xdata()), "y": _nums(line.get_ydata())}


def _dash_kind(style) -> str:
    """``solid``, ``dashed``, ``dotted`` or ``dashdot`` from a collection's (offset, dash pattern)."""
    pattern = style[1] if isinstance(style, tuple) and len(style) == 2 else None
    if not pattern:
        return "solid"
    if len(pattern) >= 4:
        return "dashdot"
    return "dotted" if pattern[0] <= pattern[1] else "dashed"


def _collection(coll) -> dict:
    from matplotlib.collections import LineCollection, PathCollection

    out: dict[str, Any] = {"gid": coll.get_gid(), "label": coll.get_label()}
    if isinstance(coll, LineCollection):
        out["kind"] = "segments"
        out["segments"] = [_nums(seg) for seg in coll.get_segments()]
        styles = coll.get_linestyle()
        out["ls"] = _dash_kind(styles[0]) if styles else "solid"
    elif isinstance(coll, PathCollection):
        out["kind"] = "scatter"
        out["offsets"] = [_nums(p) for p in coll.get_offsets()]
    else:
        out["kind"] = type(coll).__name__
    colors = coll.get_edgecolor() if len(coll.get_edgecolor()) else coll.get_facecolor()
    out["colors"] = sorted({_color(c) for c in colors})
    return out


def _patch(patch, ax) -> dict | None:
    from matplotlib.patches import Rectangle

    if not isinstance(patch, Rectangle):
        return None
    x0, w = patch.get_x(), patch.get_width()
    return {"gid": patch.get_gid(), "label": patch.get_label(), "kind": "span",
            "x": _nums([x0, x0 + w]), "color": _color(patch.get_facecolor()),
            "spans_y": patch.get_transform() != ax.transData}


def extract(fig) -> dict:
    """The record of what ``fig`` draws (module docstring)."""
    axes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        legend = ax.get_legend()
        axes.append({
            "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
            "xlim": _nums(ax.get_xlim()), "ylim": _nums(ax.get_ylim()),
            "lines": [_line(ln) for ln in ax.get_lines()],
            "collections": [_collection(c) for c in ax.collections],
            "patches": [p for p in (_patch(p, ax) for p in ax.patches) if p is not None],
            "texts": [{"text": t.get_text(), "xy": _nums(getattr(t, "xy", t.get_position()))}
                      for t in ax.texts],
            "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
        })
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    width, height = fig.get_size_inches()
    return {"suptitle": suptitle, "size_inches": _nums([width, height]), "axes": axes}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_record(png: bytes, record: dict) -> bytes:
    """``png`` with ``record`` (JSON) in a zTXt chunk just before IEND."""
    if not png.startswith(PNG_SIGNATURE) or png[-12:-8] != b"\x00\x00\x00\x00" or png[-8:-4] != b"IEND":
        raise DrawnError("not a PNG ending in IEND")
    text = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("latin-1", "backslashreplace")
    chunk = _chunk(b"zTXt", KEYWORD + b"\x00\x00" + zlib.compress(text, 9))
    return png[:-12] + chunk + png[-12:]


def save_png(fig, out: str | Path, dpi: int = 130) -> dict:
    """Render ``fig`` to ``out`` (atomically) with its drawn-data record; returns the record."""
    import matplotlib.pyplot as plt

    from plasticity.io import atomic_path

    record = extract(fig)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(png_with_record(buf.getvalue(), record))
    return record


def read_png(path: str | Path) -> dict:
    """The drawn-data record of a PNG written by ``save_png``."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise DrawnError(f"{path}: not a PNG file")
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I", data[pos:pos + 4])[0], data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"zTXt" and body.startswith(KEYWORD + b"\x00"):
            try:
                return json.loads(zlib.decompress(body[len(KEYWORD) + 2:]).decode("latin-1"))
            except (zlib.error, json.JSONDecodeError) as exc:
                raise DrawnError(f"{path}: malformed drawn-data record ({exc})") from None
        pos += 12 + length
    raise DrawnError(f"{path}: no drawn-data record (written by plasticity.analysis.drawn.save_png?)")


def compare(a: Any, b: Any, rel: float = 1e-6, where: str = "") -> list[str]:
    """Differences between two records: numbers beyond ``rel`` (relative to the larger magnitude,
    absolute below 1e-12), anything else unequal; each named by its path in the record."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only in one record" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += compare(a[k], b[k], rel, f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare(x, y, rel, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) or (
            isinstance(a, (int, float)) and isinstance(b, (int, float))
            and not isinstance(a, bool) and not isinstance(b, bool)):
        scale = max(abs(a), abs(b))
        return [] if abs(a - b) <= max(rel * scale, 1e-12) else [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]
