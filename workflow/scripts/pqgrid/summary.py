"""One row per grid cell, from the evaluation JSONs."""

from __future__ import annotations

import json
import logging

import pandas as pd

from .evaluate import SPARSITY_KEYS
from .io import atomic_path, write_text
from .sanity import collapsed

log = logging.getLogger("pqgrid")

COLUMNS = [
    "arch", "seed", "sparsity", "quant",
    "top1", "top3", "keras_top1_test", "keras_top1_train", "keras_top3_train", "keras_top3_test",
    "file_bytes", "gzip_bytes", "gzip_ratio",
    "params", "depthwise_params", "depthwise_share", "zero_fraction", "conv_dense_sparsity", "depthwise_sparsity",
    "tflite_kernel_sparsity", "tflite_conv_dense_sparsity", "tflite_depthwise_sparsity", "tflite_sparse_encoded_tensors",
    "m_by_n", "m_by_n_layers_eligible", "m_by_n_layers_ok",
    "input_dtype", "output_dtype", "test_images",
    "worst_class", "worst_class_top1", "chance_top1", "parent_top1", "collapsed", "tflite_sha256",
]


def summarize(eval_jsons, keras_jsons, per_class_csvs, out_csv, out_md, out_per_class=None) -> pd.DataFrame:
    keras = {}
    for p in keras_jsons:
        k = json.loads(open(p).read())
        c = k["cell"]
        keras[(c["arch"], str(c["seed"]), str(c["sparsity"]))] = k
    rows, long = [], []
    for p, pc in zip(eval_jsons, per_class_csvs):
        e = json.loads(open(p).read())
        c = e["cell"]
        long.append(pd.read_csv(pc).assign(**{k: c[k] for k in ("arch", "seed", "sparsity", "quant")}))
        k = keras[(c["arch"], str(c["seed"]), str(c["sparsity"]))]
        classes = pd.read_csv(pc)
        worst = classes.loc[classes["accuracy"].idxmin()]
        # The parent is the trained (unpruned) Keras model of the same architecture and seed.
        parent = keras.get((c["arch"], str(c["seed"]), "0"), {}).get("top1_test", float("nan"))
        rows.append({
            **{key: c[key] for key in ("arch", "seed", "sparsity", "quant")},
            **{key: e[key] for key in ("top1", "top3", "file_bytes", "gzip_bytes", *SPARSITY_KEYS, "input_dtype",
                                       "output_dtype", "test_images", "tflite_sha256", "keras_top1_test")},
            "keras_top1_train": k["top1_train"], "keras_top3_train": k["top3_train"], "keras_top3_test": k["top3_test"],
            **{key: e.get(key) for key in ("tflite_kernel_sparsity", "tflite_conv_dense_sparsity", "tflite_depthwise_sparsity",
                                           "tflite_sparse_encoded_tensors", "m_by_n", "m_by_n_layers_eligible", "m_by_n_layers_ok")},
            "gzip_ratio": e["gzip_bytes"] / e["file_bytes"],
            "worst_class": worst["class"], "worst_class_top1": float(worst["accuracy"]),
            "chance_top1": 1 / len(classes), "parent_top1": parent,
            "collapsed": collapsed(e["top1"], parent, len(classes), e["test_images"]),
        })
    df = pd.DataFrame(rows, columns=COLUMNS).sort_values(["arch", "seed", "sparsity", "quant"], key=_natural)
    for r in df[df["collapsed"]].itertuples():
        log.warning("%s seed%s s%s %s collapsed to chance: top-1 %.3f (chance %.3f) while its trained model scores %.3f",
                    r.arch, r.seed, r.sparsity, r.quant, r.top1, r.chance_top1, r.parent_top1)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    write_text(out_md, to_markdown(df))
    if out_per_class:
        pcs = pd.concat(long, ignore_index=True)[["arch", "seed", "sparsity", "quant", "class", "support", "correct", "accuracy"]]
        with atomic_path(out_per_class) as tmp:
            pcs.to_csv(tmp, index=False)
    return df


def _natural(col):
    if col.name in ("seed", "sparsity"):  # numeric order; patterns ("2:4") last
        return pd.to_numeric(col, errors="coerce").fillna(1000)
    return col


def to_markdown(df: pd.DataFrame, floatfmt=".4f") -> str:
    """A GitHub table without the `tabulate` dependency."""
    def fmt(v):
        if isinstance(v, float):
            return str(int(v)) if v.is_integer() and abs(v) >= 1 else format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
