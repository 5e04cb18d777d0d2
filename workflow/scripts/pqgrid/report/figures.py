"""Stage `plot_figure`: the thesis' figures (4.1-4.11) and pqgrid's own (all quant modes,
Pareto views), with seaborn.

Each figure is a function `(tables, settings) -> matplotlib Figure` (a family's also takes
its architecture or device) registered under its name in report_entries.py, which says what it
reads; a figure whose inputs are missing (no device configured) becomes a labelled
placeholder."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: jobs draw without a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from pqgrid.core import report_entries  # noqa: E402
from pqgrid.core.io import atomic_path  # noqa: E402
from pqgrid.core.pruning_methods import method_of  # noqa: E402
from pqgrid.evaluate.stats import CELL, MB, is_unpruned, per_class_changes, sparsity_number  # noqa: E402
from pqgrid.evaluate.summary import mobilenet_v3, read_long_tables  # noqa: E402
from pqgrid.report.drawing import (  # noqa: E402
    ERRORBAR,
    FIGURES,
    draw_lines,
    emulated_note,
    figure,
    mark_collapsed,
    pareto_plot,
    placeholder,
    plain_log_ticks,
    prep,
    readable_legends,
    seeds_note,
)


def plot_figure(*, name, inputs, settings, out_png):
    render(name, read_long_tables(inputs), settings, out_png)


# ---------------------------------------------------------------- 4.1 / 4.9
def _quant_change(table, settings, archs=None, title=""):
    s, b = table["summary"], table.get("bench")
    s = s[is_unpruned(s)]
    if archs is not None:
        s = s[s.arch.isin(archs)]
    if s.empty:
        return placeholder(title, "no matching architectures in this run", settings)
    metrics = {"file_bytes": "size", "top1": "top-1", "top3": "top-3"}
    # Per seed: each quantized cell against the fp32 cell of the same trained model; the bars
    # are the mean over seeds with its 95 % t-interval.
    m = s.groupby(["arch", "seed", "quant"])[list(metrics)].mean()
    if b is not None and not b.empty:
        dev = settings.get("device") or b.device.iloc[0]
        bb = b[(b.device == dev) & is_unpruned(b)].groupby(["arch", "seed", "quant"])[["ram_delta_mb", "latency_us"]]
        m = m.join(bb.mean())
        metrics.update({"ram_delta_mb": "RAM", "latency_us": "latency"})
        title += f"; RAM and latency on {dev}{emulated_note(b, dev)}"
    rows = []
    for (arch, seed, q), r in m.iterrows():
        if q == "fp32" or (arch, seed, "fp32") not in m.index:
            continue
        base = m.loc[(arch, seed, "fp32")]
        for k, label in metrics.items():
            if k in r and pd.notna(r[k]) and base[k]:
                change = 100 * (r[k] - base[k]) / base[k]
                rows.append({"arch": arch, "seed": seed, "mode": q, "metric": label, "change_pct": change})
    d = pd.DataFrame(rows)
    if d.empty:
        return placeholder(title, "needs fp32 and at least one quantized mode", settings)
    modes = [q for q in settings.get("modes", ["int8"]) if q in set(d["mode"])] or sorted(set(d["mode"]))
    d = d[d["mode"].isin(modes)]
    g = sns.catplot(
        data=d,
        x="metric",
        y="change_pct",
        hue="arch",
        col="mode",
        kind="bar",
        errorbar=ERRORBAR,
        height=3.6,
        aspect=1.4,
        col_wrap=min(2, len(modes)),
    )
    g.set_axis_labels("", "change vs fp32 (%, log beyond ±10)")
    g.set_titles("{col_name} vs fp32")
    for ax in g.axes.flat:
        ax.axhline(0, color="0.3", lw=0.8)
        ax.tick_params(axis="x", rotation=30)
        # symmetric log: a mode that costs +1,000 % latency must not flatten the -70 % size bar
        ax.set_yscale("symlog", linthresh=10)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:+,.0f}" if v else "0"))
        # a log axis hides how far between its ticks a bar ends: its value is written on it
        for bars in ax.containers:
            ax.bar_label(bars, fmt=_signed_pct, fontsize=7, padding=2)
    g.figure.suptitle(f"{title}{seeds_note(d)}", y=1.03)
    return g.figure


def _signed_pct(v) -> str:
    """A bar's change in %, signed; "" for a bar of no change (nothing to read there)."""
    return "" if not v or abs(v) < 0.05 else f"{v:+,.1f}" if abs(v) < 10 else f"{v:+,.0f}"


@figure("fig_4_1_quantization_change")
def quantization_change(table, settings):
    return _quant_change(table, settings, title="Change by quantization relative to fp32 (unpruned models)")


@figure("fig_4_9_quantization_change_v3")
def quantization_change_v3(table, settings):
    archs = mobilenet_v3(table["summary"])
    return _quant_change(table, settings, archs, title="MobileNetV3 variants: change by quantization relative to fp32")


# ---------------------------------------------------------------- 4.2 - 4.5, 4.10, 4.11
def _vs_sparsity(table, settings, quant, y, ylabel, title, archs=None):
    s = prep(table["summary"])
    s = s[s.quant.isin(quant if isinstance(quant, list) else [quant])]
    if archs is not None:
        s = s[s.arch.isin(archs)]
    if s.empty:
        return placeholder(title, "no matching cells", settings)
    title += seeds_note(s)
    x = settings.get("x", "exact_sparsity_pct" if y == "top1_pct" else "sparsity_pct")
    xlabel = "exact sparsity (% zeros)" if x == "exact_sparsity_pct" else "target sparsity (%)"
    if isinstance(quant, list):
        g = sns.relplot(
            data=s,
            x=x,
            y=y,
            hue="arch",
            style="arch",
            col="quant",
            kind="line",
            markers=True,
            dashes=False,
            errorbar=ERRORBAR,
            height=4,
        )
        g.set_axis_labels(xlabel, ylabel)
        g.set_titles("{col_name}")
        g.figure.suptitle(title, y=1.03)
        if y == "top1_pct":
            for q, ax in g.axes_dict.items():
                mark_collapsed(s[s.quant == q], x, ax)
        return g.figure
    fig, ax = plt.subplots(figsize=settings.get("size", (7, 4.5)))
    draw_lines(s, x, y, "arch", ax, xlabel, ylabel, title)
    if y == "top1_pct":
        mark_collapsed(s, x, ax)
    return fig


# Figs. 4.2-4.5: one quantization mode, one quantity against sparsity.
_VS_SPARSITY = {
    "fig_4_2_top1_vs_sparsity_fp32": ("fp32", "top1_pct", "test top-1 (%)", "Top-1 vs exact sparsity, fp32"),
    "fig_4_3_gzip_vs_sparsity_fp32": ("fp32", "gzip_mb", "gzip -9 size (MB)", "Compressed size vs sparsity, fp32"),
    "fig_4_4_top1_vs_sparsity_int8": ("int8", "top1_pct", "test top-1 (%)", "Top-1 vs exact sparsity, int8"),
    "fig_4_5_gzip_vs_sparsity_int8": ("int8", "gzip_mb", "gzip -9 size (MB)", "Compressed size vs sparsity, int8"),
}


for _name, _args in _VS_SPARSITY.items():
    figure(_name)(lambda t, st, _args=_args: _vs_sparsity(t, st, *_args))


@figure("fig_4_10_top1_vs_sparsity_v3")
def top1_vs_sparsity_v3(table, settings):
    archs = mobilenet_v3(table["summary"])
    return _vs_sparsity(
        table,
        settings,
        ["fp32", "int8"],
        "top1_pct",
        "test top-1 (%)",
        "MobileNetV3 variants: top-1 vs sparsity",
        archs,
    )


@figure("fig_4_11_gzip_vs_sparsity_v3")
def gzip_vs_sparsity_v3(table, settings):
    archs = mobilenet_v3(table["summary"])
    return _vs_sparsity(
        table,
        settings,
        ["fp32", "int8"],
        "gzip_mb",
        "gzip -9 size (MB)",
        "MobileNetV3 variants: gzip size vs sparsity",
        archs,
    )


# ---------------------------------------------------------------- 4.6 - 4.8 families
def _per_class(table, settings, arch, variants, title):
    alpha = settings.get("alpha", 0.05)
    d = per_class_changes(table["per_class"], arch, ("0", "fp32"), variants, alpha)
    if d.empty:
        return placeholder(title, f"no per-class results for {arch}", settings)
    fig, ax = plt.subplots(figsize=settings.get("size", (8, 4.8)))
    sns.barplot(data=d, x="class", y="delta_pp", hue="variant", ax=ax, errorbar=None)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set(xlabel="class", ylabel="Δ top-1 vs unpruned fp32 (percentage points)", title=title)
    ax.tick_params(axis="x", rotation=30)
    n = int(d.n_seeds.min())
    hues = list(dict.fromkeys(d.variant))
    for bars, v in zip(list(ax.containers), hues, strict=True):  # a copy: errorbar() adds containers
        sub = d[d.variant == v].reset_index(drop=True)
        xs = [bar.get_x() + bar.get_width() / 2 for bar in bars]
        if n >= 2:  # Welch's 95 % interval of each class' change
            ax.errorbar(
                xs,
                sub.delta_pp,
                yerr=[sub.delta_pp - sub.delta_ci_low_pp, sub.delta_ci_high_pp - sub.delta_pp],
                fmt="none",
                ecolor="0.2",
                elinewidth=0.8,
                capsize=2,
            )
        for x, r in zip(xs, sub.itertuples(), strict=True):
            if r.significant:
                top = r.delta_ci_high_pp if r.delta_pp >= 0 else r.delta_ci_low_pp
                ax.annotate("*", (x, top), ha="center", va="bottom" if r.delta_pp >= 0 else "top", fontsize=12)
    note = (
        f"bars: mean over {n} seeds, whiskers: Welch's 95 % interval; * class hit harder or softer than the "
        f"model (Welch's t-test of class - overall top-1, Benjamini-Hochberg q < {alpha})"
        if n >= 2
        else "1 seed: no interval, no test"
    )
    ax.text(0, -0.3, note, transform=ax.transAxes, fontsize=7, wrap=True, va="top")  # below the class names
    if not d.delta_pp.abs().gt(0).any():  # an empty plot says why it is empty
        ax.text(0.5, 0.62, "no change: every class's top-1 equals the unpruned fp32 model's", transform=ax.transAxes,
                ha="center", va="center", fontsize=10, color="0.3")  # fmt: skip
    overall = d.groupby("variant").overall_delta_pp.first()
    ax.legend(
        title="variant (overall Δ)",
        labels=[f"{v} ({overall[v]:+.1f} pp)" for v in hues],
        handles=ax.get_legend_handles_labels()[0],
        fontsize=8,
    )
    return fig


@figure("per_class_pruning_")
def per_class_pruning(table, settings, arch):
    pc = table["per_class"]
    sps = sorted(
        {str(s) for s in pc[(pc.arch == arch) & (pc.quant == "fp32")].sparsity if str(s) != "0"},
        key=lambda s: sparsity_number(pd.Series([s]))[0],
    )
    return _per_class(table, settings, arch, [(s, "fp32") for s in sps], f"{arch}: per-class change by pruning (fp32)")


@figure("per_class_quantization_")
def per_class_quant(table, settings, arch):
    pc = table["per_class"]
    qs = [q for q in dict.fromkeys(pc[(pc.arch == arch) & is_unpruned(pc)].quant) if q != "fp32"]
    return _per_class(
        table, settings, arch, [("0", q) for q in qs], f"{arch}: per-class change by quantization (unpruned)"
    )


# ---------------------------------------------------------------- beyond the thesis
@figure("quant_modes")
def quant_modes(table, settings):
    s = table["summary"]
    s = s[is_unpruned(s)].assign(top1_pct=lambda x: 100 * x.top1, file_mb=lambda x: x.file_bytes / MB)
    fig, axes = plt.subplots(1, 2, figsize=settings.get("size", (11, 4.5)))
    sns.barplot(data=s, x="quant", y="top1_pct", hue="arch", ax=axes[0], errorbar=ERRORBAR)
    axes[0].set(xlabel="quantization mode", ylabel="test top-1 (%)", title="Accuracy")
    sns.barplot(data=s, x="quant", y="file_mb", hue="arch", ax=axes[1], errorbar=ERRORBAR)
    axes[1].set(xlabel="quantization mode", ylabel=".tflite size (MB)", title="File size")
    # one legend for both panels, beside them: inside, it covered the tallest bars
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes:
        ax.get_legend().remove()
    fig.legend(handles, labels, title="architecture", fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Quantization modes, unpruned models{seeds_note(s)}")
    return fig


@figure("pareto_gzip")
def pareto_gzip(table, settings):
    n = table["summary"].seed.nunique()
    s = table["summary"].groupby(CELL[:1] + CELL[2:], as_index=False)[["top1", "gzip_bytes"]].mean()
    s["gzip_mb"] = s.gzip_bytes / MB
    s["method"] = s.sparsity.map(method_of)
    return pareto_plot(s, "gzip_mb", "gzip -9 size (MB, log)", "Accuracy vs compressed size: every cell", settings, n)


@figure("pareto_latency_")
def pareto_latency(table, settings, device):
    b = table.get("bench")
    title = f"Accuracy vs latency on {device}"
    if b is None or b.empty or device not in set(b.device):
        return placeholder(title, f"no benchmark results for device {device!r}", settings)
    title += emulated_note(b, device)
    # p50, the latency the findings and the ship choice compare
    d = table["summary"].merge(b[b.device == device][[*CELL, "p50_us"]], on=CELL)
    n = d.seed.nunique()
    d = d.groupby(["arch", "sparsity", "quant"], as_index=False)[["top1", "p50_us"]].mean()
    d["method"] = d.sparsity.map(method_of)
    return pareto_plot(d, "p50_us", f"p50 latency on {device} (µs, log)", title, settings, n)


@figure("energy_vs_top1")
def energy_vs_top1(table, settings):
    """Energy per inference (mJ) against test top-1, one panel per device that measured
    power; the panel's title names how power was known (a stated wattage is no measurement)."""
    b = table.get("bench")
    title = "Energy per inference vs accuracy"
    if b is None or b.empty or "energy_mj_per_inference" not in b or b.energy_mj_per_inference.isna().all():
        return placeholder(title, "no device with a power source (devices.<name>.power)", settings)
    d = table["summary"].merge(b[b.energy_mj_per_inference.notna()], on=CELL)
    devices = list(dict.fromkeys(d.device))
    fig, axes = plt.subplots(
        1, len(devices), figsize=settings.get("size", (6 * len(devices), 5)), squeeze=False, sharey=True
    )
    for ax, device in zip(axes[0], devices, strict=True):
        dd = d[d.device == device]
        method = dd.energy_method.iloc[0]
        dd = dd.groupby(["arch", "sparsity", "quant"], as_index=False)[["energy_mj_per_inference", "top1"]].mean()
        dd["top1_pct"] = 100 * dd.top1
        sns.scatterplot(data=dd, x="energy_mj_per_inference", y="top1_pct", hue="arch", style="quant", s=45, ax=ax)
        ax.set_xscale(settings.get("xscale", "log"))
        plain_log_ticks(ax.xaxis)
        ax.set(
            title=f"{device}: power by {method}",
            xlabel="energy per inference (mJ, log)",
            ylabel="test top-1 (%)",
        )
        ax.legend(fontsize=7)
    n = d.seed.nunique()
    fig.suptitle(title + (f" - means of {n} seeds" if n > 1 else ""))
    fig.tight_layout()
    return fig


@figure("layer_error_worst")
def layer_error_worst(table, settings):
    """The `top_layers` ops with the largest int8 error per architecture (unpruned models,
    mean over seeds): rmse in quantization steps, the QuantizationDebugger tutorial's measure."""
    le = table["layer_error"]
    le = le[is_unpruned(le)]
    if le.empty:
        return placeholder("Where int8 hurts", "no unpruned model with an int8 cell", settings)
    k = int(settings.get("top_layers", 5))
    mean = le.groupby(["arch", "layer", "op"], as_index=False)["rmse_over_scale"].mean()
    worst = mean.sort_values("rmse_over_scale", ascending=False).groupby("arch").head(k)
    # every seed's value of the chosen ops: the bar is their mean, the whisker its interval
    worst = le.merge(worst[["arch", "layer", "op"]], on=["arch", "layer", "op"])
    worst = worst.assign(label=worst.layer.str.slice(0, 40) + " (" + worst.op + ")").sort_values(
        "rmse_over_scale", ascending=False
    )
    archs = list(dict.fromkeys(worst.arch))
    fig, axes = plt.subplots(
        len(archs), 1, figsize=settings.get("size", (8, 1.0 + 0.45 * k * len(archs))), squeeze=False
    )
    for ax, arch in zip(axes[:, 0], archs, strict=True):
        d = worst[worst.arch == arch]
        order = d.groupby("label", sort=False).rmse_over_scale.mean().sort_values(ascending=False).index
        sns.barplot(
            data=d, y="label", x="rmse_over_scale", ax=ax, color=sns.color_palette()[0], errorbar=ERRORBAR, order=order
        )
        ax.axvline(0.29, color="0.4", ls="--", lw=0.8)  # rounding alone: 1/sqrt(12) steps
        ax.set(title=arch, xlabel="rmse / scale (quantization steps; dashed: rounding alone)", ylabel="")
    fig.suptitle(f"Where int8 hurts: largest per-op error, unpruned models{seeds_note(le)}")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- what compression forgets
@figure("pie_rate")
def pie_rate(table, settings):
    """PIE rate (% of the test set) against target sparsity, one line per quantization mode
    and one panel per architecture; a population statistic, so no error bars: the legend
    gives the population size."""
    p = table["pie"].copy()
    p["sparsity_pct"] = sparsity_number(p.sparsity)
    p["pie_pct"] = 100 * p.pie_rate
    n = int(p.n_models.min())
    g = sns.relplot(
        data=p,
        x="sparsity_pct",
        y="pie_pct",
        hue="quant",
        style="quant",
        col="arch",
        kind="line",
        markers=True,
        dashes=False,
        errorbar=None,
        height=3.8,
        col_wrap=min(3, p.arch.nunique()),
    )
    g.set_axis_labels("target sparsity (%)", "PIEs (% of test images)")
    g.figure.suptitle(
        f"Test images a compressed population answers differently (modal label, {n} model{'s' if n != 1 else ''} "
        "per population)",
        y=1.03,
    )
    return g.figure


def render(name, tables: dict, settings: dict, out_png):
    """Draw one figure (atomically) as PNG, and as every other format in `format` beside it.
    Missing inputs give a labelled placeholder."""
    entry, member = report_entries.resolve(name)
    fn, needs, title = FIGURES[entry.name], entry.needs, entry.caption
    sns.set_theme(
        style=settings.get("style", "whitegrid"),
        context=settings.get("context", "notebook"),
        palette=settings.get("palette", "colorblind"),
    )
    missing = [n for n in needs if tables.get(n) is None or (n != "bench" and tables[n].empty)]
    if missing:
        fig = placeholder(title, f"no {', '.join(missing)} data", settings)
    else:
        fig = fn(tables, settings, member) if member is not None else fn(tables, settings)
    readable_legends(fig)
    for ext in dict.fromkeys(["png", *settings.get("format", ["png"])]):
        out = str(out_png)[: -len(".png")] + f".{ext}"
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=settings.get("dpi", 120), bbox_inches="tight", format=ext)
    plt.close(fig)
