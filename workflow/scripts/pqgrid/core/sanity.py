"""Is a number a result or a broken model? One definition of "at chance", used by the jobs
(a warning in their log), by summary.csv (`collapsed`) and by the findings (no verdict from
such cells). Pure Python: the report environment has no TensorFlow."""

from __future__ import annotations

import math


def chance_margin(n_classes: int, n_images: int) -> float:
    """How far above 1/classes a top-1 can land by luck: three binomial standard errors of a
    guessing model on `n_images` test images, at least 2 pp (CIFAR-10, 3000 images: 2 pp;
    500 images: 4 pp)."""
    p = 1.0 / n_classes
    return max(0.02, 3.0 * math.sqrt(p * (1 - p) / max(1, n_images)))


def at_chance(top1: float, n_classes: int, n_images: int) -> bool:
    return top1 <= 1.0 / n_classes + chance_margin(n_classes, n_images)


def clearly_above_chance(top1: float, n_classes: int, n_images: int) -> bool:
    """More than twice the margin above chance: a model whose changes mean something. A
    run whose trained models are not gets no verdict on accuracy (findings.py)."""
    return top1 > 1.0 / n_classes + 2 * chance_margin(n_classes, n_images)


def collapsed(top1: float, parent_top1: float, n_classes: int, n_images: int) -> bool:
    """A cell at chance while the model it was derived from is clearly above it (more than
    twice the margin): pruning or quantization broke the model. This is a defect to look
    at, not a measurement of the method: never a data point for a claim."""
    if parent_top1 is None or (isinstance(parent_top1, float) and math.isnan(parent_top1)):
        return False
    return at_chance(top1, n_classes, n_images) and clearly_above_chance(parent_top1, n_classes, n_images)


def collapse_message(what: str, top1: float, parent: str, parent_top1: float, n_classes: int) -> str:
    return (
        f"{what} is at chance: top-1 {top1:.3f} with {n_classes} classes (chance {1 / n_classes:.3f}) while "
        f"{parent} scores {parent_top1:.3f}; it is flagged `collapsed` in summary.csv and gets no verdict in "
        "the findings"
    )
