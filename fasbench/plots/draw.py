"""Drawing the figures of :mod:`fasbench.plots.data` with matplotlib (no pyplot, no global state).

Each ``draw_*`` function takes the data dict of one figure and returns a
:class:`matplotlib.figure.Figure`; every drawn artist that carries a number has a ``gid``
naming what it is (``curve:<record>``, ``point:<policy>:<record>``, ``hist:<split>:<class>``,
``series:<key>``, ``bar:<run>:<task>``, ...), so a test can read back what was drawn and
compare it with the record. :func:`save` writes the figure as PNG and/or SVG and its data as
``<name>.json`` beside it, each atomically and without timestamps (equal inputs give equal
files).

Figures are made with :class:`matplotlib.figure.Figure` directly: rendering goes through
matplotlib's Agg (PNG) and SVG backends without selecting a pyplot backend, so importing this
module changes nothing for a user's own matplotlib session.

DET axes are matplotlib's ``function`` scale with the normal deviate of
:class:`statistics.NormalDist`: the drawn data stay the (FAR, FRR) fractions themselves, and no
scipy is needed (scikit-learn's ``DetCurveDisplay`` would bring scipy and scikit-learn into the
core and compute its own curve, a second definition of the numbers).
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from fasbench.errors import FasbenchError
from fasbench.records import SOURCE_VAL_THRESHOLD, TARGET_EER_THRESHOLD
from fasbench.util import atomic_write_bytes, atomic_write_json

FORMATS = ("png", "svg")
#: How each threshold policy's operating point / threshold line is drawn.
POLICY_STYLE = {
    SOURCE_VAL_THRESHOLD: {"marker": "o", "fill": True, "ls": "-",
                           "label": "threshold from source-val (deployable)"},
    TARGET_EER_THRESHOLD: {"marker": "s", "fill": False, "ls": "--",
                           "label": "target-EER threshold (idealized)"},
}
_OTHER_POLICY = {"marker": "^", "fill": False, "ls": ":", "label": None}
#: DET axes: probabilities are clipped to [DET_CLIP, 1 - DET_CLIP] before the normal deviate.
DET_CLIP = 1e-5
DET_TICKS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99)
_RC = {"svg.hashsalt": "fasbench", "font.size": 9, "axes.titlesize": 9, "legend.fontsize": 8}


def _mpl() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise FasbenchError("figures need matplotlib: pip install matplotlib") from None
    return matplotlib


def _figure(width: float, height: float) -> Any:
    _mpl()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _style(policy: str) -> dict[str, Any]:
    return POLICY_STYLE.get(policy, {**_OTHER_POLICY, "label": policy})


def _nan(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)


# --------------------------------------------------------------------------- saving


def render(fig: Any, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes (no date in the metadata: equal figures, equal bytes)."""
    import matplotlib

    if fmt not in FORMATS:
        raise FasbenchError(f"figure format {fmt!r} is not supported; use {', '.join(FORMATS)}")
    buf = io.BytesIO()
    # SVG: no date and no RDF block (whose namespace URLs would be the page's only outside references)
    metadata = dict.fromkeys(("Date", "Type", "Format", "Creator")) if fmt == "svg" else {}
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format=fmt, metadata=metadata, dpi=110 if fmt == "png" else None)
    return buf.getvalue()


def svg_text(fig: Any) -> str:
    """The figure as an ``<svg>`` element (XML declaration and DOCTYPE dropped), to inline in HTML."""
    text = render(fig, "svg").decode("utf-8")
    return text[text.index("<svg"):]


def save(fig: Any, data: dict[str, Any], stem: str | Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``stem.<fmt>`` for each format and ``stem.json`` (the data drawn); return the paths."""
    stem = Path(stem)
    written = [atomic_write_bytes(stem.with_name(f"{stem.name}.{fmt}"), render(fig, fmt)) for fmt in formats]
    written.append(atomic_write_json(stem.with_name(f"{stem.name}.json"), data))
    return written


# --------------------------------------------------------------------------- ROC and DET


def _setting_colors(panels: list[dict[str, Any]]) -> dict[tuple, Any]:
    keys: dict[tuple, None] = {}
    for panel in panels:
        for c in panel["curves"]:
            keys.setdefault((c["method"], c["run"]), None)
    return dict(zip(keys, _colors(len(keys))))


def _det_floor(panels: list[dict[str, Any]]) -> float:
    n = max((max(c["n_live"], c["n_spoof"]) for p in panels for c in p["curves"]), default=10)
    return max(DET_TICKS[0], 10.0 ** math.floor(math.log10(0.5 / max(n, 1))))


def draw_operating(panels: list[dict[str, Any]], det: bool = False, title: str = "") -> Any:
    """ROC (FPR, TPR) or DET (FPR, FRR on normal-deviate axes) of each task's records, the
    target data at the record's evaluation level, with each threshold policy's operating point."""
    n = max(len(panels), 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = _figure(3.3 * cols, 3.3 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = _setting_colors(panels)
    floor = _det_floor(panels)
    for ax, panel in zip(axes, panels):
        for c in panel["curves"]:
            color = colors[(c["method"], c["run"])]
            y = c["frr"] if det else c["tpr"]
            ax.plot(c["fpr"], y, color=color, lw=1.2, alpha=0.9, gid=f"curve:{c['record']}")
            for policy, pt in c["points"].items():
                st = _style(policy)
                ax.plot([pt["fpr"]], [pt["frr"] if det else pt["tpr"]], ls="none", marker=st["marker"], ms=6,
                        color=color, mfc=color if st["fill"] else "white", mew=1.3, zorder=3,
                        gid=f"point:{policy}:{c['record']}")
        ax.set_title(f"{panel['task']} (target {panel['target']})")
        if det:
            ax.set_xscale("function", functions=_probit_functions())
            ax.set_yscale("function", functions=_probit_functions())
            _det_ticks(ax, floor)
            ax.set_xlabel("APCER, all attacks pooled (= FAR) %")
            ax.set_ylabel("BPCER (= FRR) %")
        else:
            ax.plot([0, 1], [0, 1], color="0.8", lw=0.8, ls=":", zorder=0)
            ax.set_xlim(-0.01, 1.01)
            ax.set_ylim(-0.01, 1.01)
            ax.set_xlabel("FPR = APCER pooled (FAR)")
            ax.set_ylabel("TPR = 1 - BPCER")
        ax.grid(True, color="0.9", lw=0.6)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    _operating_legend(fig, colors, panels)
    if title:
        fig.suptitle(title)
    return fig


def _probit_functions() -> tuple:
    nd = NormalDist()
    fwd = np.vectorize(lambda p: nd.inv_cdf(min(max(float(p), DET_CLIP), 1.0 - DET_CLIP)), otypes=[float])
    inv = np.vectorize(lambda z: nd.cdf(float(z)), otypes=[float])
    return fwd, inv


def _det_ticks(ax: Any, floor: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = [t for t in DET_TICKS if floor <= t <= 0.95]
    fmt = FuncFormatter(lambda p, _pos: f"{100 * p:g}")
    ax.set_xlim(floor, 0.95)
    ax.set_ylim(floor, 0.95)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(fmt)
        axis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelrotation=90)


def _operating_legend(fig: Any, colors: dict[tuple, Any], panels: list[dict[str, Any]]) -> None:
    from matplotlib.lines import Line2D

    seeds: dict[tuple, set] = {}
    for p in panels:
        for c in p["curves"]:
            seeds.setdefault((c["method"], c["run"]), set()).add(c["seed"])
    handles = [Line2D([], [], color=col, lw=1.5, label=f"{m} ({run}), seed{'s' if len(seeds[(m, run)]) > 1 else ''} "
                      f"{','.join(str(s) for s in sorted(seeds[(m, run)]))}")
               for (m, run), col in colors.items()]
    policies = dict.fromkeys(pol for p in panels for c in p["curves"] for pol in c["points"])
    for policy in policies:
        st = _style(policy)
        handles.append(Line2D([], [], ls="none", marker=st["marker"], color="0.2",
                              mfc="0.2" if st["fill"] else "white", label=st["label"]))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False)


# --------------------------------------------------------------------------- histograms


def draw_histograms(data: dict[str, Any]) -> Any:
    """Score histograms of live videos and of each attack type, source-val split and target."""
    from matplotlib.lines import Line2D

    fig = _figure(9.0, 3.6)
    axes = fig.subplots(1, len(data["panels"]), squeeze=False).ravel()
    edges = np.asarray(data["edges"], dtype=np.float64)
    names = list(dict.fromkeys(k for p in data["panels"] for k in p["counts"]))
    colors = dict(zip(names, _colors(len(names))))
    lines: dict[str, Any] = {}
    for ax, panel in zip(axes, data["panels"]):
        for name, counts in panel["counts"].items():
            ax.stairs(counts, edges, color=colors[name], lw=1.4, gid=f"hist:{panel['split']}:{name}")
        for policy, thr in panel["thresholds"].items():
            st = _style(policy)
            ax.axvline(thr, color="0.25", ls=st["ls"], lw=1.0, gid=f"thr:{panel['split']}:{policy}")
            lines[policy] = Line2D([], [], color="0.25", ls=st["ls"], lw=1.0, label=f"{st['label']}: {thr:.4g}")
        where = "source-val split (source data)" if panel["split"] == "val" else f"target {data['target']}"
        counts = ", ".join(f"{n} {k}" for k, n in panel["n"].items())
        ax.set_title(f"{where}\n{counts} ({panel['level']}s)")
        ax.set_xlabel("live score (higher = more live)")
        ax.set_ylabel(f"{panel['level']}s")
        ax.grid(True, axis="y", color="0.9", lw=0.6)
    handles = [Line2D([], [], color=colors[n], lw=1.6, label=n) for n in names] + list(lines.values())
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    fig.suptitle(f"{data['method']} ({data['run']}), {data['protocol']} {data['task']}, seed {data['seed']}: "
                 "scores per class")
    return fig


# --------------------------------------------------------------------------- training curves

_CURVE_TITLES = {"loss": "training losses", "val": "source-val split (source data), %",
                 "target": "target (monitored, %)"}


def draw_curves(data: dict[str, Any]) -> Any:
    """Losses, source-val metrics and target metrics over the evaluated steps (``record.curve``)."""
    groups = [(g, s) for g, s in data["series"].items() if s]
    fig = _figure(3.4 * max(len(groups), 1), 3.2)
    axes = fig.subplots(1, max(len(groups), 1), squeeze=False).ravel()
    steps = np.asarray(data["steps"], dtype=np.float64)
    sel = data["selection"]
    for ax, (group, series) in zip(axes, groups):
        x = np.asarray(data.get("loss_steps", steps), dtype=np.float64) if group == "loss" else steps
        dense = group == "loss" and data.get("loss_source") != "record.curve"
        for i, (key, values) in enumerate(series.items()):
            ax.plot(x, _nan(values), marker="" if dense else "o", ms=3, lw=1.2, color=_colors(len(series))[i],
                    label=key.split("/", 1)[1] if "/" in key and group != "loss" else key, gid=f"series:{key}")
        ax.axvline(data["selected_step"], color="0.4", ls=":", lw=1.0, label=f"selected step ({sel['rule']})",
                   gid="selected")
        title = _CURVE_TITLES[group]
        if group == "loss":
            title += ", every logged step (log.csv)" if dense else ", at the evaluated steps"
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(frameon=False)
        ax.grid(True, color="0.9", lw=0.6)
    fig.suptitle(f"{data['method']} ({data['run']}), {data['protocol']} {data['task']}, seed {data['seed']}")
    return fig


# --------------------------------------------------------------------------- leaderboard chart


def draw_chart(data: dict[str, Any], title: str = "") -> Any:
    """One bar group per leaderboard row (method and run id), one bar per task and the average:
    the mean over seeds, with the sample std over seeds as error bar."""
    groups, tasks = data["groups"], data["tasks"]
    fig = _figure(max(7.5, 0.9 + len(groups) * (0.22 * len(tasks) + 0.3)), 3.8 + 0.1 * min(len(groups), 12))
    ax = fig.subplots()
    width = 0.8 / max(len(tasks), 1)
    colors = _colors(len(tasks))
    for j, task in enumerate(tasks):
        for i, group in enumerate(groups):
            bar = group["bars"][j]
            if bar["mean"] is None:
                continue
            x = i + (j - (len(tasks) - 1) / 2) * width
            avg = j == len(tasks) - 1
            ax.bar([x], [bar["mean"]], width, color="0.35" if avg else colors[j], edgecolor="white", lw=0.4,
                   gid=f"bar:{group['run']}:{task}")
            if bar["std"] is not None:
                err = ax.errorbar([x], [bar["mean"]], yerr=[bar["std"]], color="black", lw=0.8, capsize=2)
                err.lines[2][0].set_gid(f"err:{group['run']}:{task}")  # the vertical segment mean - std .. mean + std
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color="0.35" if j == len(tasks) - 1 else colors[j], label=t) for j, t in enumerate(tasks)],
               loc="outside lower center", ncols=len(tasks), frameon=False)
    seeds = [str(g["seeds"]).split(" ")[0] for g in groups]
    ax.set_xticks(range(len(groups)), [f"{g['method']}\n{g['run']}\n{n} seed{'s' if n != '1' else ''}"
                                       for g, n in zip(groups, seeds)], fontsize=8)
    ax.set_ylabel(f"target {data['metric']} (%)")
    top = max((b["mean"] + (b["std"] or 0.0) for g in groups for b in g["bars"] if b["mean"] is not None), default=1.0)
    ax.set_ylim(0, top * 1.08 + 1e-9)
    ax.grid(True, axis="y", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    if title:
        fig.suptitle(title, ha="left", x=0.01, fontsize=9)
    return fig
