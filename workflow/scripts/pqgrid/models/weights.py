"""Weights from an .h5 file into a built model, checked layer by layer first: used by every
builder (models.py for keras.applications, architectures.py for pqgrid's own)."""

from __future__ import annotations

from pqgrid.core.io import check_file, damaged
from pqgrid.core.paths import workflow_path


class ModelError(ValueError):
    """A model cannot be built as configured: names the architecture setting and the fix."""


def saved_weight_shapes(path) -> dict:
    """{layer name: [weight shapes]} of an .h5 written by save_weights() or save()."""
    import h5py

    check_file(path)
    try:
        with h5py.File(path, "r") as f:
            g = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            out = {}
            for raw in g.attrs["layer_names"]:
                layer = raw.decode() if isinstance(raw, bytes) else raw
                names = [n.decode() if isinstance(n, bytes) else n for n in g[layer].attrs["weight_names"]]
                out[layer] = [tuple(g[layer][n].shape) for n in names]
            return out
    except (OSError, KeyError, ValueError) as e:
        raise damaged(path, e) from None


def load_weights_file(model, path) -> int:
    """Load an .h5's weights into `model` by layer name after checking that every layer of
    `model` that has weights is in the file with the same shapes (the file may hold more,
    e.g. another classifier). Raises ModelError naming the first mismatch. Returns the number
    of layers loaded."""
    path = workflow_path(path)
    saved = saved_weight_shapes(path)
    n = 0
    for layer in model.layers:
        want = [tuple(w.shape) for w in layer.weights]
        if not want:
            continue
        if layer.name not in saved:
            raise ModelError(
                f"weights {path}: has no layer {layer.name!r} of {model.name}; the file was saved from "
                "another architecture (give a file saved from the same builder and settings)"
            )
        if saved[layer.name] != want:
            raise ModelError(
                f"weights {path}: layer {layer.name!r} has shapes {saved[layer.name]} in the file but "
                f"{want} in {model.name}; the file was saved with another width, alpha or builder"
            )
        n += 1
    model.load_weights(str(path), by_name=True)
    return n
