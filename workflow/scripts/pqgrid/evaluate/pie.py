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

import numpy as np
import pandas as pd

from pqgrid.core.io import atomic_path, read_predictions
from pqgrid.core.stats import class_changes, welch_interval
from pqgrid.data.arrays import load_manifest
from pqgrid.evaluate.accuracy import per_class_table


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
    ref = _stack(reference, [f"uncompressed seed {s}" for s in ref_seeds], sha, y)
    ref_modal, ref_agree = modal_labels(ref, k)
    ref_correct = (ref == y).sum(axis=0)
    ref_pc = _per_class_frame(ref, ref_seeds, y, classes)
    ref_acc = (ref == y).mean(axis=1)

    summary, images, per_class = [], [], []
    for (sparsity, quant), members in variants.items():
        seeds = [s for s, _ in members]
        var = _stack([p for _, p in members], [f"s{sparsity} {quant} seed {s}" for s in seeds], sha, y)
        var_modal, var_agree = modal_labels(var, k, prefer=ref_modal)
        var_correct = (var == y).sum(axis=0)
        pie = ref_modal != var_modal
        var_acc = (var == y).mean(axis=1)
        gap, gap_lo, gap_hi = heldout_gap(ref, list(ref_seeds), var, seeds, y, k, resamples=resamples)
        d_lo, d_hi = welch_interval(ref_acc, var_acc)
        summary.append(
            {
                "sparsity": sparsity,
                "quant": quant,
                "variant": f"s{sparsity} {quant}",
                "n_models": len(var),
                "n_models_uncompressed": len(ref),
                "test_images": len(y),
                "pies": int(pie.sum()),
                "pie_rate": float(pie.mean()),
                "top1": float(var_acc.mean()),
                "top1_uncompressed": float(ref_acc.mean()),
                "top1_delta_pp": 100 * float(var_acc.mean() - ref_acc.mean()),
                "top1_delta_ci_low_pp": 100 * d_lo,
                "top1_delta_ci_high_pp": 100 * d_hi,
                # Hooker: are PIEs harder? Top-1 of each population on the PIEs vs the rest.
                "uncompressed_top1_on_pies": _mean_on(ref, y, pie),
                "uncompressed_top1_on_rest": _mean_on(ref, y, ~pie),
                "top1_on_pies": _mean_on(var, y, pie),
                "top1_on_rest": _mean_on(var, y, ~pie),
                # Are PIEs harder? Each uncompressed model scored on the PIEs the other
                # models define (heldout_gaps), so no model judges images it picked.
                "heldout_pies_minus_rest_pp": 100 * gap,
                "heldout_pies_minus_rest_ci_low_pp": 100 * gap_lo,
                "heldout_pies_minus_rest_ci_high_pp": 100 * gap_hi,
            }
        )
        idx = np.flatnonzero(pie)
        images.append(
            pd.DataFrame(
                {
                    "sparsity": sparsity,
                    "quant": quant,
                    "variant": f"s{sparsity} {quant}",
                    "index": idx,
                    "true_class": [classes[i] for i in y[idx]],
                    "modal_before": [classes[i] for i in ref_modal[idx]],
                    "agree_before": ref_agree[idx],
                    "modal_after": [classes[i] for i in var_modal[idx]],
                    "agree_after": var_agree[idx],
                    "correct_before": ref_correct[idx],
                    "correct_after": var_correct[idx],
                    "n_models_before": len(ref),
                    "n_models_after": len(var),
                    # share of models right before minus after: 1 = all knew it, none still do
                    "forgetting": ref_correct[idx] / len(ref) - var_correct[idx] / len(var),
                }
            )
        )
        per_class.append(
            class_changes(ref_pc, _per_class_frame(var, seeds, y, classes), alpha).assign(
                sparsity=sparsity, quant=quant, variant=f"s{sparsity} {quant}"
            )
        )
    return (
        pd.DataFrame(summary),
        pd.concat(images, ignore_index=True) if images else pd.DataFrame(),
        pd.concat(per_class, ignore_index=True) if per_class else pd.DataFrame(),
    )


def heldout_gap(ref, ref_seeds, var, var_seeds, y, num_classes, confidence=0.95, resamples=1000):
    """Are PIEs harder? Per uncompressed model i: its top-1 on the PIEs minus its top-1 on
    the rest, with the PIEs defined by the other uncompressed models and the compressed
    models of the other seeds (a compressed model shares its trained model's seed, so it
    leaves too). Returns the mean over models and its interval, (nan, nan, nan) with one
    model or no PIEs.

    Scoring the models that define the PIEs is selection: an image a model gets wrong is
    more often one whose modal label is wrong, so that gap is negative even when every
    image is equally hard. Held out, it is 0 in expectation unless images differ in
    difficulty. The per-model gaps share their images, so a t-interval over them is too
    narrow (it rejected a true 0 in ~10 % of simulated nulls instead of 2.5 %); the
    interval here is a percentile bootstrap over images (the independent unit), seeded, so
    a rerun gives the same numbers. tests/test_findings_null.py checks both rates."""
    m = len(ref)
    right, pies = [], []
    for i, seed in enumerate(ref_seeds):
        others = [j for j in range(m) if j != i]
        kept = [j for j, s in enumerate(var_seeds) if s != seed]
        if not others or not kept:
            continue
        modal, _ = modal_labels(ref[others], num_classes)
        var_modal, _ = modal_labels(var[kept], num_classes, prefer=modal)
        right.append(ref[i] == y)
        pies.append(modal != var_modal)
    if not right:
        return float("nan"), float("nan"), float("nan")
    right, pies = np.array(right, float), np.array(pies, float)

    def gap(idx):
        r, p = right[:, idx], pies[:, idx]
        on, off = p.sum(axis=-1), (1 - p).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            g = (r * p).sum(axis=-1) / on - (r * (1 - p)).sum(axis=-1) / off
        return np.nanmean(g, axis=-1) if np.isfinite(g).any() else np.nan

    point = gap(np.arange(len(y)))
    if not np.isfinite(point):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(0)
    boot = np.array([gap(rng.integers(0, len(y), len(y))) for _ in range(resamples)])
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.nanpercentile(boot, [tail, 100 - tail])
    return float(point), float(lo), float(hi)


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
