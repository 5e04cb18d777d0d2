"""The claim framework: `@claim` registers a function in CLAIMS, `Run` gives it the run's
tables (by what architectures are, never by config names), `NotMeasured` says which cells
are missing; the interval helpers every claim family shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pqgrid.core.pruning_methods import method_of
from pqgrid.core.sanity import clearly_above_chance
from pqgrid.evaluate.stats import (
    CELL,
    is_unpruned,
    paired_interval,
    sparsity_number,
    t_interval,
)

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"


class NotMeasured(Exception):
    """The run lacks the cells a claim needs; the message says which."""


@dataclass(frozen=True)
class Claim:
    no: int
    sentence: str
    threshold: str
    needs: str  # the cells it needs, said when they are absent
    about_accuracy: bool
    check: Callable  # Run -> (measured text, holds: bool)


CLAIMS: list[Claim] = []


def claim(no, sentence, threshold, needs, about_accuracy=False):
    def register(fn):
        CLAIMS.append(Claim(no, sentence, threshold, needs, about_accuracy, fn))
        return fn

    return register


@dataclass
class Run:
    """The long tables of one run, with architectures known by kind and the collapsed cells
    set aside. `acc` views leave collapsed cells out; size and latency views keep them."""

    summary: pd.DataFrame
    bench: pd.DataFrame
    per_class: pd.DataFrame
    architectures: dict = field(default_factory=dict)  # config name -> {builder: ..., ...}
    pie: pd.DataFrame = field(default_factory=pd.DataFrame)  # results/tables/pie.csv
    pie_per_class: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self):
        # Cells of another pruning method than magnitude (pruning.methods) go to their own
        # claims (claims_methods.py); every other claim sees the thesis' kind of cells only.
        self.methods, self.summary = _split_methods(self.summary)
        self.methods_bench, self.bench = _split_methods(self.bench)
        # Timing claims read `timing`: the devices' rows less those measured under an emulator
        # (an emulated board's latency says nothing about hardware); on-device accuracy
        # (claim 19) reads `bench`, emulated boards included - ARM code against the host's.
        self.timing, self.methods_timing = _measured_on_hardware(self.bench), _measured_on_hardware(self.methods_bench)
        _, self.per_class = _split_methods(self.per_class)
        _, self.pie = _split_methods(self.pie)
        self.near_chance = near_chance_archs(self.summary)
        self.broken = collapsed_cells(self.summary)
        bad = set(_cell_key(self.broken))
        s = self.summary[~self.summary.arch.isin(self.near_chance)]
        self.acc_summary = s[~_cell_key(s).isin(bad)] if bad else s
        pc = self.per_class
        if not pc.empty:
            pc = pc[~pc.arch.isin(self.near_chance)]
            pc = pc[~_cell_key(pc).isin(bad)] if bad else pc
        self.acc_per_class = pc
        # PIE variants with a collapsed cell in their population are defects, not forgetting
        p = self.pie
        if not p.empty and len(self.broken):
            hit = {(r.arch, str(r.sparsity), r.quant) for r in self.broken.itertuples()}
            p = p[[(r.arch, str(r.sparsity), r.quant) not in hit for r in p.itertuples()]]
        self.acc_pie = p[~p.arch.isin(self.near_chance)] if not p.empty else p

    def archs(self, builder: str, minimalistic: bool = False) -> list:
        """Config names in this run of one kind of architecture (any width)."""
        return [
            a
            for a in dict.fromkeys(self.summary.arch)
            if self.architectures.get(a, {}).get("builder") == builder
            and bool(self.architectures[a].get("minimalistic", False)) == minimalistic
        ]

    def unpruned(self, quant: str, accuracy: bool = False) -> pd.DataFrame:
        s = self.acc_summary if accuracy else self.summary
        return s[is_unpruned(s) & (s.quant == quant)].groupby("arch").mean(numeric_only=True)

    def unstructured(self, accuracy: bool = False) -> pd.DataFrame:
        """Cells pruned to a percentage (not a pattern), with numeric sparsity `sp`."""
        s = self.acc_summary if accuracy else self.summary
        s = s.assign(sp=sparsity_number(s.sparsity))
        return s[s.sparsity.astype(str).str.isdigit()]


def _split_methods(df):
    """(cells of pruning methods other than magnitude, the rest) of a long table."""
    if df.empty or "sparsity" not in df:
        return df.iloc[0:0], df
    other = df.sparsity.map(method_of) != "magnitude"
    return df[other], df[~other]


def _measured_on_hardware(bench):
    if bench.empty or "emulated" not in bench:
        return bench
    return bench[~bench.emulated.astype(str).str.lower().eq("true")]


def near_chance_archs(summary) -> list:
    """Architectures whose trained model (`parent_top1`, mean over seeds) is not clearly
    above chance (sanity.clearly_above_chance): what compression does to them is noise."""
    if summary.empty or "parent_top1" not in summary:
        return []
    g = summary.groupby("arch", sort=False).agg(
        p=("parent_top1", "mean"), c=("chance_top1", "first"), n=("test_images", "first")
    )
    return [a for a, r in g.iterrows() if not pd.isna(r.p) and not clearly_above_chance(r.p, round(1 / r.c), int(r.n))]


def collapsed_cells(summary) -> pd.DataFrame:
    """Cells at chance while their trained model is not (summary.csv's `collapsed`)."""
    if "collapsed" not in summary.columns:
        return summary.iloc[0:0]
    return summary[summary["collapsed"].astype(str).str.lower() == "true"]


def _cell_key(df) -> pd.Series:
    return df[CELL].astype(str).agg("|".join, axis=1) if len(df) else pd.Series([], dtype=str)


def cell_names(cells) -> str:
    return ", ".join(f"{r.arch} seed{r.seed} s{r.sparsity} {r.quant}" for r in cells.itertuples())


def int8_pairs(run, accuracy=False):
    fp, i8 = run.unpruned("fp32", accuracy), run.unpruned("int8", accuracy)
    both = fp.index.intersection(i8.index)
    if not len(both):
        raise NotMeasured("needs fp32 and int8 cells at sparsity 0")
    return fp, i8, both


def paired_delta(run, a, b) -> pd.DataFrame:
    """Per architecture: top-1 of cells `b` minus cells `a` (each a (sparsity, quant)), in pp,
    paired: mean, 95 % interval (lo, hi), n seeds. Two or more seeds: Student-t over the
    per-seed differences (the seed is the unit that varies between trainings), widened to
    cover the exact paired interval of every seed's discordant images pooled (`a` the
    unpruned fp32 model): a few seeds that happen to agree closely say little about the
    test set's own sampling noise, and seeds that agree exactly give no t-interval at all.
    One seed: that paired interval alone (stats.paired_interval, McNemar); else no interval
    (lo, hi NaN). Collapsed cells and architectures whose trained model is near chance are
    left out."""
    return paired_delta_in(run.acc_summary, a, b)


def paired_delta_in(summary, a, b) -> pd.DataFrame:
    """`paired_delta` over the cells of a summary table as given (the ship stage: every
    method's cells, collapsed ones included - they only fail its budget)."""
    s = summary.assign(sp=lambda x: x.sparsity.astype(str))

    def cells(cell):
        return s[(s.sp == str(cell[0])) & (s.quant == cell[1])].groupby(["arch", "seed"])

    d = (100 * (cells(b).top1.mean() - cells(a).top1.mean())).dropna()
    per_image = a == ("0", "fp32") and "gained_vs_fp32" in s
    counts = cells(b)[["gained_vs_fp32", "lost_vs_fp32", "test_images"]].first() if per_image else None
    rows = {}
    for arch, v in d.groupby(level="arch", sort=False):
        lo, hi = t_interval(v.values)
        row = {"mean": float(v.mean()), "lo": lo, "hi": hi, "n": len(v), "gained": np.nan, "lost": np.nan}
        pooled = _pooled_counts(counts, v.index)
        if pooled is not None:
            g, lost, n = pooled
            p_lo, p_hi = (100 * x for x in paired_interval(g, lost, n))
            # the hull: never narrower than the seeds' spread nor than the images allow
            row.update(lo=np.nanmin([lo, p_lo]), hi=np.nanmax([hi, p_hi]), gained=g, lost=lost)
        rows[arch] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "lo", "hi", "n", "gained", "lost"])


def _pooled_counts(counts, cells):
    """(images gained, lost, images scored) summed over the seeds `cells` ((arch, seed)
    pairs), or None where a seed lacks its per-image counts."""
    if counts is None or not all(c in counts.index for c in cells):
        return None
    c = counts.loc[list(cells)]
    if c.isna().any().any():
        return None
    return int(c.gained_vs_fp32.sum()), int(c.lost_vs_fp32.sum()), int(c.test_images.sum())


def delta_text(r) -> str:
    """'+0.4 pp [-0.1, +0.9], 5 seeds', '+0.4 pp [-0.3, +1.1] (1 seed: 12 images gained, 8
    lost)' or '+0.4 pp (1 seed, no interval)'."""
    if r["n"] >= 2 and pd.isna(r["lo"]):
        return f"{r['mean']:+.1f} pp, {int(r['n'])} seeds (no interval: they agree exactly, no per-image counts)"
    if r["n"] >= 2:
        return f"{r['mean']:+.1f} pp [{r['lo']:+.1f}, {r['hi']:+.1f}], {int(r['n'])} seeds"
    if not pd.isna(r["lo"]):
        return f"{r['mean']:+.1f} pp [{r['lo']:+.1f}, {r['hi']:+.1f}] (1 seed: {int(r['gained'])} images gained, {int(r['lost'])} lost)"
    return f"{r['mean']:+.1f} pp (1 seed, no interval)"


def lower_end(r) -> float:
    """Lower end of the interval; -inf without one (nothing is shown to be above anything)."""
    return -np.inf if pd.isna(r["lo"]) else r["lo"]


def upper_end(r) -> float:
    return np.inf if pd.isna(r["hi"]) else r["hi"]
