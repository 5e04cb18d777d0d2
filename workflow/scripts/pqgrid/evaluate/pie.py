"""Stage `pie`: what compressed models forget, over seed populations (Hooker et al. 2019,
"What Do Compressed Deep Neural Networks Forget?", arXiv 1911.05248; quantization:
"Characterising Bias in Compressed Models", arXiv 2010.03058).

For one architecture, the uncompressed population is its trained Keras models (sparsity
0), one per seed; each compressed variant (sparsity x quantization mode, from the .tflite)
is a population of the same size. A test image is a PIE (pruning- or quantization-
identified exemplar) of a variant when the variant population's modal label differs from
the uncompressed population's modal label. Ties: in the uncompressed population they go to
the lowest class index (numpy's argmax of the vote counts); in a compressed population a
label tied with the uncompressed modal label loses to it, so a PIE needs a strict plurality
for another label (with 2 models, one right and one wrong is not a PIE - the lowest-index
rule alone made such coin flips PIEs). With one seed the "population" is one model and a PIE
is any changed answer.

Hooker's own code (google-research/pruning_identified_exemplars) is TF1 and tied to their
ImageNet setup; the counting here is a few lines of numpy, the statistics are scipy's
(stats.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np
import pandas as pd

from pqgrid.core.io import atomic_path, read_predictions
from pqgrid.data.arrays import load_manifest
from pqgrid.evaluate.accuracy import per_class_table
from pqgrid.evaluate.stats import class_changes, welch_interval


class PopulationError(ValueError):
    """Predictions that cannot be compared (another test set, another image count)."""


def modal_labels(labels: np.ndarray, num_classes: int, prefer=None) -> tuple[np.ndarray, np.ndarray]:
    """`labels`: (models, images) predicted classes -> per image the modal label and how many
    models voted for it. Ties go to `prefer` (a label per image) where it is among the tied
    labels, else to the lowest class index."""
    labels = np.asarray(labels)
    n = labels.shape[1]
    votes = np.zeros((n, num_classes), dtype=np.int32)
    for row in labels:
        votes[np.arange(n), row] += 1
    score = votes.astype(np.float64)
    if prefer is not None:
        score[np.arange(n), prefer] += 0.5  # wins a tie, never a real majority
    modal = score.argmax(axis=1)
    return modal, votes[np.arange(n), modal]


def _stack(predictions: list[dict], names: list[str], test_sha256: str, y: np.ndarray) -> np.ndarray:
    """(models, images) labels; every file must describe the same test set as the first."""
    for p, name in zip(predictions, names, strict=True):
        if p["test_sha256"] != test_sha256 or len(p["label"]) != len(y) or not np.array_equal(p["true"], y):
            raise PopulationError(
                f"{name}: predicted on another test set than the uncompressed models (test_sha256 or labels "
                "differ); rerun its evaluation (delete the file) so every population sees the same images"
            )
    return np.stack([p["label"] for p in predictions])


def _per_class_frame(labels: np.ndarray, seeds: list, y: np.ndarray, classes: list) -> pd.DataFrame:
    """Long per-class table (seed, class, support, correct, accuracy) of a population: the
    evaluation's own per-class table, once per model."""
    return pd.concat(
        [per_class_table(y, pred, classes).assign(seed=seed) for seed, pred in zip(seeds, labels, strict=True)],
        ignore_index=True,
    )


@dataclass(frozen=True)
class _Population:
    """A population's answers on the test set and what the analysis reads off them."""

    preds: np.ndarray  # (models, images) predicted classes
    modal: np.ndarray  # per image: the modal label
    agree: np.ndarray  # per image: how many models voted for it
    correct: np.ndarray  # per image: how many models are right
    acc: np.ndarray  # per model: top-1


def _population(preds: np.ndarray, y: np.ndarray, k: int, prefer=None) -> _Population:
    modal, agree = modal_labels(preds, k, prefer=prefer)
    return _Population(preds, modal, agree, (preds == y).sum(axis=0), (preds == y).mean(axis=1))


def analyse(reference: list[dict], ref_seeds: list, variants: dict, classes: list, alpha=0.05, resamples=1000):
    """PIEs, per-class changes and a summary row for every variant.

    reference: the uncompressed population's predictions (read_predictions dicts), one per
    seed in `ref_seeds`; variants: {(sparsity, quant): [(seed, predictions), ...]}.
    Returns (summary, images, per_class) frames."""
    if not reference:
        raise PopulationError("no uncompressed model predictions: the analysis needs the trained models' (keras_s0)")
    y = reference[0]["true"].astype(np.int64)
    sha = reference[0]["test_sha256"]
    k = len(classes)
    ref = _population(_stack(reference, [f"uncompressed seed {s}" for s in ref_seeds], sha, y), y, k)
    ref_pc = _per_class_frame(ref.preds, ref_seeds, y, classes)
    summary, images, per_class = [], [], []
    for (sparsity, quant), members in variants.items():
        seeds = [s for s, _ in members]
        stack = _stack([p for _, p in members], [f"s{sparsity} {quant} seed {s}" for s in seeds], sha, y)
        var = _population(stack, y, k, prefer=ref.modal)
        pie = ref.modal != var.modal
        baseline = seed_baseline(ref.preds, list(ref_seeds), var.preds, seeds, y, k, resamples=resamples)
        cell = {"sparsity": sparsity, "quant": quant, "variant": f"s{sparsity} {quant}"}
        summary.append({**cell, **_summary_row(ref, var, pie, y), **baseline})
        images.append(_pie_images(cell, ref, var, pie, y, classes))
        var_pc = _per_class_frame(var.preds, seeds, y, classes)
        per_class.append(class_changes(ref_pc, var_pc, alpha).assign(**cell))
    return (
        pd.DataFrame(summary),
        pd.concat(images, ignore_index=True) if images else pd.DataFrame(),
        pd.concat(per_class, ignore_index=True) if per_class else pd.DataFrame(),
    )


def _summary_row(ref: _Population, var: _Population, pie: np.ndarray, y: np.ndarray) -> dict:
    """A variant's PIE count and rate, top-1 against the uncompressed population's with the
    Welch interval of the difference, and each population's top-1 on and off the PIEs."""
    d_lo, d_hi = welch_interval(ref.acc, var.acc)
    return {
        "n_models": len(var.preds),
        "n_models_uncompressed": len(ref.preds),
        "test_images": len(y),
        "pies": int(pie.sum()),
        "pie_rate": float(pie.mean()),
        "top1": float(var.acc.mean()),
        "top1_uncompressed": float(ref.acc.mean()),
        "top1_delta_pp": 100 * float(var.acc.mean() - ref.acc.mean()),
        "top1_delta_ci_low_pp": 100 * d_lo,
        "top1_delta_ci_high_pp": 100 * d_hi,
        # Hooker: are PIEs harder? Top-1 of each population on the PIEs vs the rest.
        "uncompressed_top1_on_pies": _mean_on(ref.preds, y, pie),
        "uncompressed_top1_on_rest": _mean_on(ref.preds, y, ~pie),
        "top1_on_pies": _mean_on(var.preds, y, pie),
        "top1_on_rest": _mean_on(var.preds, y, ~pie),
    }


def _pie_images(cell: dict, ref: _Population, var: _Population, pie, y, classes: list) -> pd.DataFrame:
    """One row per PIE of `cell`: its class, the modal label and votes before and after, the
    models right."""
    idx = np.flatnonzero(pie)
    return pd.DataFrame(
        {
            **cell,
            "index": idx,
            "true_class": [classes[i] for i in y[idx]],
            "modal_before": [classes[i] for i in ref.modal[idx]],
            "agree_before": ref.agree[idx],
            "modal_after": [classes[i] for i in var.modal[idx]],
            "agree_after": var.agree[idx],
            "correct_before": ref.correct[idx],
            "correct_after": var.correct[idx],
            "n_models_before": len(ref.preds),
            "n_models_after": len(var.preds),
            # share of models right before minus after: 1 = all knew it, none still do
            "forgetting": ref.correct[idx] / len(ref.preds) - var.correct[idx] / len(var.preds),
        }
    )


def _splits(seeds: list, size: int, limit: int) -> list[tuple[tuple, tuple]]:
    """Ordered pairs (A, B) of disjoint sets of `size` seeds; at most `limit` of them, drawn
    with a fixed generator when there are more (10 seeds in halves of 5 give 252)."""
    pairs = [(a, b) for a in combinations(seeds, size) for b in combinations([s for s in seeds if s not in a], size)]
    if len(pairs) > limit:
        pairs = [pairs[i] for i in sorted(np.random.default_rng(0).choice(len(pairs), limit, replace=False))]
    return pairs


def _split_pies(ref, var, rows_a, rows_b_var, rows_b_ref, num_classes):
    """PIEs between the uncompressed models `rows_a` and the compressed `rows_b_var`, and
    between `rows_a` and the uncompressed `rows_b_ref` (the seed-to-seed baseline)."""
    modal, _ = modal_labels(ref[rows_a], num_classes)
    compressed = modal != modal_labels(var[rows_b_var], num_classes, prefer=modal)[0]
    retrained = modal != modal_labels(ref[rows_b_ref], num_classes, prefer=modal)[0]
    return compressed, retrained


def seed_baseline(ref, ref_seeds, var, var_seeds, y, num_classes, confidence=0.95, resamples=1000, limit=20) -> dict:
    """What compression forgets beyond what training with other seeds changes anyway.

    PIE counts depend on the population size (a single model disagrees with another seed's on
    a third of CIFAR-10 at 70 % top-1; Hooker's 30 models agree far more), and images differ in
    difficulty, so neither a PIE rate nor "PIEs are harder" says anything about compression
    alone. Here the seeds are split into two disjoint halves A and B of equal size: the PIEs
    of compression are those between A's uncompressed models and B's compressed ones, the
    seed-to-seed PIEs those between A's and B's uncompressed models (same sizes, same images).
    Averaged over the splits, per image:

    - excess_pie_rate: compression's PIE rate minus the seed-to-seed one (claims 15, 17);
    - excess_pies_minus_all_pp: are the images compression forgets beyond retraining harder?
      An uncompressed model held out of both halves, its top-1 on the images weighted by their
      excess minus its top-1 on all (claim 16; needs 3 seeds). Without compression the excess
      is nothing but noise, however unequal the images, while a plain "PIEs vs the rest"
      gap is negative for five more seeds of the same model whenever images differ in
      difficulty.

    Intervals are percentile bootstraps over test images (the independent unit, seeded).
    With one seed there is nothing to split: the values are NaN and the claims say what to add."""
    common = [s for s in ref_seeds if s in var_seeds]
    at_ref = {s: i for i, s in enumerate(ref_seeds)}
    at_var = {s: i for i, s in enumerate(var_seeds)}
    out = dict.fromkeys(
        ["half_models", "compression_split_pie_rate", "seed_split_pie_rate", "excess_pie_rate", "excess_pie_ci_low",
         "excess_pie_ci_high", "excess_pies_minus_all_pp", "excess_pies_minus_all_ci_low_pp",
         "excess_pies_minus_all_ci_high_pp"], float("nan"))  # fmt: skip
    half = len(common) // 2
    if half == 0:
        return out
    compressed, retrained = [], []
    for a, b in _splits(common, half, limit):
        c, r = _split_pies(
            ref, var, [at_ref[s] for s in a], [at_var[s] for s in b], [at_ref[s] for s in b], num_classes
        )
        compressed.append(c)
        retrained.append(r)
    excess = np.mean(compressed, axis=0) - np.mean(retrained, axis=0)  # per image, over splits
    counts = _resample_counts(len(y), resamples)
    lo, hi = _percentile_interval(counts @ excess / len(y), confidence)
    out.update(half_models=half, compression_split_pie_rate=float(np.mean(compressed)),
               seed_split_pie_rate=float(np.mean(retrained)), excess_pie_rate=float(excess.mean()),
               excess_pie_ci_low=float(lo), excess_pie_ci_high=float(hi))  # fmt: skip
    gap = _excess_harder(ref, var, common, at_ref, at_var, y, num_classes, confidence, resamples, limit)
    out.update(excess_pies_minus_all_pp=gap[0], excess_pies_minus_all_ci_low_pp=gap[1],
               excess_pies_minus_all_ci_high_pp=gap[2])  # fmt: skip
    return out


def _excess_harder(ref, var, common, at_ref, at_var, y, num_classes, confidence, resamples, limit):
    """(point, low, high) in pp of claim 16's comparison (seed_baseline); NaNs below 3 seeds
    or where compression adds no PIEs. Pooled over (held-out model, split) pairs: the
    held-out model's top-1 on the images weighted by their excess (compression's PIE share
    minus the seed-to-seed one) minus its top-1 on all images."""
    right, excess = [], []
    for scorer in common:
        others = [s for s in common if s != scorer]
        for a, b in _splits(others, len(others) // 2, max(1, limit // len(common))) if len(others) >= 2 else []:
            c, r = _split_pies(ref, var, [at_ref[s] for s in a], [at_var[s] for s in b], [at_ref[s] for s in b],
                               num_classes)  # fmt: skip
            right.append(ref[at_ref[scorer]] == y)
            excess.append(c.astype(float) - r)
    if not right:
        return (float("nan"),) * 3
    right, excess = np.array(right, float), np.array(excess)
    # Sums over the drawn images are counts-weighted sums over all images: one matrix product
    # per quantity instead of one fancy-indexed copy of the (pairs, images) arrays per resample.
    everything = np.ones((1, len(y)))
    resampled = _resample_counts(len(y), resamples)

    def gap(counts):
        weighted = counts @ excess.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            gaps = counts @ (right * excess).sum(axis=0) / weighted - counts @ right.mean(axis=0) / len(y)
        return np.where(weighted > 0, gaps, np.nan)

    point = gap(everything)[0]
    if not np.isfinite(point):
        return (float("nan"),) * 3
    lo, hi = _percentile_interval(gap(resampled), confidence)
    return 100 * float(point), 100 * float(lo), 100 * float(hi)


@lru_cache(maxsize=2)  # the same draws for every population of a test set: made once
def _resample_counts(images: int, resamples: int) -> np.ndarray:
    """(resamples, images), read-only: how often each test image (the independent unit) is
    drawn in each bootstrap resample with replacement, seeded so a rerun gives the same numbers."""
    rng = np.random.default_rng(0)
    draws = np.stack([rng.integers(0, images, images) for _ in range(resamples)])
    flat = (draws + images * np.arange(resamples)[:, None]).ravel()
    counts = np.bincount(flat, minlength=resamples * images).reshape(resamples, images).astype(np.float64)
    counts.flags.writeable = False
    return counts


def _percentile_interval(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of bootstrap statistics (NaN ones left out)."""
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.nanpercentile(boot, [tail, 100 - tail])
    return float(lo), float(hi)


def _mean_on(labels, y, mask) -> float:
    """Mean over models of top-1 on the images in `mask`; NaN for an empty mask."""
    return float((labels[:, mask] == y[mask]).mean()) if mask.any() else float("nan")


def most_forgotten(images: pd.DataFrame, tiles: int) -> pd.DataFrame:
    """The `tiles` test images forgotten most (largest `forgetting`, then the most agreeing
    compressed population), each image once with its worst variant."""
    if images.empty:
        return images
    ranked = images.sort_values(["forgetting", "agree_after", "index"], ascending=[False, False, True])
    return ranked.drop_duplicates("index").head(tiles)


def pie_stage(*, arch, reference, reference_seeds, variants, variant_cells, manifest, out_summary, out_images,
              out_per_class, alpha=0.05):  # fmt: skip
    """Read the populations' prediction files and write the three tables of one architecture."""
    classes = load_manifest(manifest)["classes"]
    ref = [read_predictions(p) for p in reference]
    groups: dict = {}
    for path, c in zip(variants, variant_cells, strict=True):
        groups.setdefault((str(c["sparsity"]), c["quant"]), []).append((c["seed"], read_predictions(path)))
    summary, images, per_class = analyse(ref, list(reference_seeds), groups, classes, alpha)
    for df, out in ((summary, out_summary), (images, out_images), (per_class, out_per_class)):
        df.insert(0, "arch", arch)
        with atomic_path(out) as tmp:
            df.to_csv(tmp, index=False)
