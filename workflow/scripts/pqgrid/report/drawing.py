"""What every figure of report/figures.py draws with: the registry of drawing functions
(`@figure(name)`, names from report_entries.py), the placeholder of a figure whose inputs are
missing, the shared frames and axes (sparsity in %, log ticks, the seeds note, Pareto fronts,
collapsed cells marked), and the checks a drawn figure must pass (readable legends, no text
over text)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: jobs draw without a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from pqgrid.core import report_entries  # noqa: E402
from pqgrid.evaluate.stats import MB, pareto_front, sparsity_number, t_interval  # noqa: E402

FIGURES = {}  # report_entries name -> drawing function


# Error bars of a mean over seeds: its 95 % Student-t interval (stats.t_interval), the same
# interval the tables print; none with one seed.
ERRORBAR = t_interval


def figure(name):
    """Register a drawing function under its report_entries.py name."""
    if report_entries.BY_NAME[name].kind != "figure":
        raise KeyError(f"{name} is not a figure in report_entries.py")

    def register(fn):
        FIGURES[name] = fn
        return fn

    return register


def placeholder(title, why, settings):
    fig, ax = plt.subplots(figsize=settings.get("size", (7, 4.5)))
    ax.axis("off")
    ax.text(0.5, 0.6, title, ha="center", va="center", fontsize=13, weight="bold", wrap=True)
    ax.text(0.5, 0.4, f"Not measured: {why}", ha="center", va="center", fontsize=11, color="0.3", wrap=True)
    return fig


def prep(summary):
    s = summary.copy()
    s["sparsity_pct"] = sparsity_number(s.sparsity)
    s["pattern"] = np.where(s.sparsity.astype(str).str.isdigit(), "unstructured", s.sparsity.astype(str))
    s["file_mb"], s["gzip_mb"] = s.file_bytes / MB, s.gzip_bytes / MB
    s["exact_sparsity_pct"] = 100 * s.zero_fraction
    s["top1_pct"] = 100 * s.top1
    return s[s.pattern == "unstructured"]


def draw_lines(s, x, y, hue, ax, xlabel, ylabel, title):
    sns.lineplot(data=s, x=x, y=y, hue=hue, style=hue, markers=True, dashes=False, errorbar=ERRORBAR, ax=ax)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(title="architecture", fontsize=8)


def plain_log_ticks(axis) -> None:
    """A log axis labelled at 1, 2 and 5 of each decade as plain numbers (0.2, 0.5, 1): the
    minor labels matplotlib adds on a short range (3x10^-1, 4x10^-1) overlap."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1, 2, 5)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def seeds_note(d) -> str:
    """' - mean of 3 seeds, 95 % t-interval' for a title; '' with one seed."""
    n = d.seed.nunique() if "seed" in d else 1
    return f" - mean of {n} seeds, 95 % t-interval" if n > 1 else ""


def mark_collapsed(s, x, ax):
    """Chance level as a line, and every collapsed cell (summary.csv `collapsed`: at chance
    while its trained model is not) circled in red and named: a broken model must never pass
    for a data point."""
    if "chance_top1" in s and s.chance_top1.notna().any():
        ax.axhline(100 * s.chance_top1.max(), color="0.5", ls=":", lw=1)
        ax.annotate("chance", (ax.get_xlim()[0], 100 * s.chance_top1.max()), fontsize=7, color="0.4", va="bottom")
    if "collapsed" not in s:
        return
    bad = s[s.collapsed.astype(str).str.lower() == "true"]
    if bad.empty:
        return
    ax.scatter(bad[x], bad.top1_pct, s=160, facecolors="none", edgecolors="red", linewidths=1.5, zorder=5)
    for r in bad.itertuples():
        ax.annotate(
            f"{r.arch}: collapsed",
            (getattr(r, x), r.top1_pct),
            xytext=(4, 8),
            textcoords="offset points",
            fontsize=7,
            color="red",
        )
    ax.text(
        0.01,
        0.99,
        f"red circles: {len(bad)} cell(s) collapsed to chance (broken, not a result)",
        transform=ax.transAxes,
        fontsize=7,
        color="red",
        va="top",
    )


def pareto_plot(d, x, xlabel, title, settings, n_seeds=1):
    d = d.copy()
    d["top1_pct"] = 100 * d.top1
    d["front"] = pareto_front(d, x, "top1_pct")
    fig, ax = plt.subplots(figsize=settings.get("size", (8, 5.5)))
    # several pruning methods: the marker says the method (the labels say the mode)
    style = "method" if "method" in d and d.method.nunique() > 1 else "quant"
    sns.scatterplot(data=d, x=x, y="top1_pct", hue="arch", style=style, s=45, alpha=0.6, ax=ax)
    f = d[d.front].sort_values(x)
    # hollow rings on the front's cells: a front of one cell is a point, not a line
    ax.plot(f[x], f.top1_pct, color="0.2", lw=1, drawstyle="steps-post", marker="o", mfc="none", ms=11,
            label="Pareto front")  # fmt: skip
    # Label front cells, skipping near-duplicates of the last label (same accuracy within
    # 1.5 pp and size within 25 %) so labels stay readable.
    last = None
    labelled = 0
    for r in f.itertuples():
        xv, yv = getattr(r, x), r.top1_pct
        if last and abs(yv - last[1]) < 1.5 and abs(np.log(xv / last[0])) < np.log(1.25):
            continue
        ax.annotate(
            f"{r.arch} s{r.sparsity} {r.quant}", (xv, yv), fontsize=7, xytext=(5, -9), textcoords="offset points"
        )
        last = (xv, yv)
        labelled += 1
        if labelled >= settings.get("label_top", 12):
            break
    ax.set_xscale(settings.get("xscale", "log"))
    plain_log_ticks(ax.xaxis)
    ax.set(
        xlabel=xlabel, ylabel="test top-1 (%)", title=title + (f" (means of {n_seeds} seeds)" if n_seeds > 1 else "")
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the axes: never over a cell
    return fig


def emulated_note(bench, device) -> str:
    """' (EMULATED: ...)' for a device measured under an emulator: its timing is no hardware's."""
    rows = bench[bench.device == device]
    if "emulated" in rows and rows.emulated.astype(str).str.lower().eq("true").any():
        return " (EMULATED: an emulator's timing, no hardware figure)"
    return ""


# One name per concept in every legend: seaborn titles a legend (or a section of it) with the
# column it maps.
LEGEND_NAMES = {"arch": "architecture", "quant": "quantization", "mode": "quantization"}


def readable_legends(fig) -> None:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for legend in legends:
        title = legend.get_title()
        title.set_text(LEGEND_NAMES.get(title.get_text(), title.get_text()))
        for text in legend.get_texts():
            text.set_text(LEGEND_NAMES.get(text.get_text(), text.get_text()))


def overlapping_text(fig) -> list:
    """Pairs of labels that overlap when drawn: tick labels, axis labels, titles and legend
    entries (annotations of data points excluded). tests/test_report.py asserts none."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in (fig._suptitle, getattr(fig, "_supxlabel", None), getattr(fig, "_supylabel", None)) if t]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *drawn_ticklabels(ax.xaxis), *drawn_ticklabels(ax.yaxis)]
    for legend in list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
        texts += [legend.get_title(), *legend.get_texts()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text().strip()]
    out = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            inter_w = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            inter_h = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if inter_w > 1 and inter_h > 1:  # pixels: touching is fine
                out.append((a, b))
    return out


def legends_over_data(fig) -> list:
    """(legend title, what it covers) for every legend inside an axes drawn over one of that
    axes' bars, data points or markers: data a reader cannot see. Lines not in data
    coordinates (a zero line across the axes) are not data. tests/test_report.py asserts none."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box, title = legend.get_window_extent(renderer), legend.get_title().get_text() or "legend"
        bars = [p for p in ax.patches if p.get_visible() and abs(p.get_height()) > 0 and p.get_width() > 0]
        if any(_overlap(box, bar.get_window_extent(renderer)) for bar in bars):
            out.append((title, "a bar"))
        points = [line.get_transform().transform(line.get_xydata()) for line in ax.lines
                  if line.get_visible() and line.get_transform() == ax.transData and len(line.get_xydata())]  # fmt: skip
        points += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
                   if c.get_visible() and len(c.get_offsets())]  # fmt: skip
        if any(box.contains(x, y) for xy in points for x, y in xy if np.isfinite(x) and np.isfinite(y)):
            out.append((title, "a data point"))
    return out


def _overlap(a, b) -> bool:
    """Two display boxes share more than a pixel each way (touching is fine)."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1


def drawn_ticklabels(axis) -> list:
    """The tick labels matplotlib draws: inside the view interval, not switched off."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t.label1 for t in ticks if lo <= t.get_loc() <= hi and t.label1.get_visible() and t.get_visible()]
