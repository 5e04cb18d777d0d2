"""Damaged intermediate files: every stage input that is empty or cut off fails with one
line naming the file and the fix (delete it and rerun), before anything is written."""

import json

import numpy as np
import pytest
from pqgrid.core import io
from pqgrid.data import arrays
from pqgrid.quant.convert import gzip_tflite


def _cut(src, dst, fraction=0.5):
    blob = src.read_bytes()
    dst.write_bytes(blob[: int(len(blob) * fraction)])
    return dst


def _one_line(excinfo, path):
    msg = str(excinfo.value)
    assert "\n" not in msg and str(path) in msg and "delete it and rerun" in msg, msg
    return msg


@pytest.fixture
def good(tmp_path, tiny_tflite):
    """One good file of each kind a stage reads."""
    from pqgrid.jobs.tfsetup import tensorflow
    from pqgrid.models.builders import build

    tensorflow(2, 0)
    out = {"tflite": tiny_tflite, "json": tmp_path / "m.json", "csv": tmp_path / "p.csv", "npz": tmp_path / "d.npz"}
    out["json"].write_text(json.dumps({"top1": 0.5, "cell": {}}))
    out["csv"].write_text("class,support,correct,accuracy\ncat,10,5,0.5\ndog,10,6,0.6\n")
    np.savez(out["npz"], x=np.zeros((4, 8, 8, 3), np.uint8), y=np.arange(4))
    h5 = tmp_path / "m.h5"
    build({"builder": "MobileNet", "alpha": 0.25}, 10, (32, 32, 3), None).save(h5, save_format="h5")
    out["h5"] = out["qat_h5"] = h5  # a plain model loads through load_qat too
    return out


READERS = {
    "h5": lambda p: __import__("pqgrid.models.builders", fromlist=["load_keras"]).load_keras(p),
    "qat_h5": lambda p: __import__("pqgrid.models.qat", fromlist=["load_qat"]).load_qat(p),
    "tflite": lambda p: __import__("pqgrid.evaluate.accuracy", fromlist=["interpreter"]).interpreter(p),
    "json": io.read_json,
    "csv": lambda p: io.read_csv(p, ("class", "support", "correct")),
    "npz": arrays.load_npz,
}


@pytest.mark.parametrize("kind", list(READERS))
@pytest.mark.parametrize("damage", ["empty", "cut off"])
def test_each_reader_names_the_damaged_file(good, tmp_path, kind, damage):
    READERS[kind](good[kind])  # the good file reads
    bad = tmp_path / f"bad.{kind}"
    if damage == "empty":
        bad.write_bytes(b"")
    else:
        _cut(good[kind], bad, 0.6 if kind == "csv" else 0.5)
    with pytest.raises(io.DamagedFile) as e:
        READERS[kind](bad)
    _one_line(e, bad)


def test_empty_tflite_is_not_gzipped(tmp_path):
    empty = tmp_path / "s0_fp32.tflite"
    empty.write_bytes(b"")
    out = tmp_path / "s0_fp32.tflite.gz"
    with pytest.raises(io.DamagedFile) as e:
        gzip_tflite(tflite=empty, out_gz=out)
    _one_line(e, empty)
    assert not out.exists() and not list(tmp_path.glob(".*"))
