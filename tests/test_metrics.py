import numpy as np
import pandas as pd
from pqgrid.evaluate.accuracy import confusion_matrix, per_class_table, topk_accuracy

SCORES = np.array(
    [
        [0.7, 0.2, 0.1],  # true 0: top1 hit
        [0.5, 0.3, 0.2],  # true 1: top1 miss, top2 hit
        [0.1, 0.3, 0.6],  # true 2: hit
        [0.6, 0.3, 0.1],  # true 2: miss in top1 and top2, hit in top3
    ]
)
Y = np.array([0, 1, 2, 2])


def test_topk_against_hand_computed():
    assert topk_accuracy(SCORES, Y, 1) == 0.5
    assert topk_accuracy(SCORES, Y, 2) == 0.75
    assert topk_accuracy(SCORES, Y, 3) == 1.0
    assert topk_accuracy(SCORES, Y, 5) == 1.0  # k larger than classes: everything


def test_per_class_against_hand_computed():
    pred = SCORES.argmax(1)
    t = per_class_table(Y, pred, ["a", "b", "c"])
    expected = pd.DataFrame(
        {"class": ["a", "b", "c"], "support": [1, 1, 2], "correct": [1, 0, 1], "accuracy": [1.0, 0.0, 0.5]}
    )
    pd.testing.assert_frame_equal(t, expected)


def test_confusion_rows_are_truth():
    cm = confusion_matrix(Y, SCORES.argmax(1), 3)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 0], [1, 0, 1]]
    assert cm.sum() == len(Y)


def test_bench_csv_has_one_row_per_cell_from_its_timing_sessions(tmp_path):
    """Each timing session is its own JSON: bench.csv takes the median latency over a cell's
    sessions (one disturbed session moves nothing), the largest memory, a flag any session
    raised, and keeps each session's p50 for the latency findings."""
    import json

    from pqgrid.evaluate.summary import load_bench, session_p50s

    cell = {"arch": "m", "seed": 0, "sparsity": 0, "quant": "fp32"}
    paths = []
    for r, (p50, ram, throttled) in enumerate([(100.0, 10.0, False), (130.0, 12.0, True), (101.0, 11.0, None)]):
        path = tmp_path / f"s0_fp32.r{r}.json"
        path.write_text(json.dumps({"cell": cell, "device_name": "pi", "avg_us": p50, "p50_us": p50, "p90_us": p50 * 1.1,
                                    "ram_delta_mb": ram, "tool": "pqgrid-harness", "throttled": throttled}))  # fmt: skip
        paths.append(path)
    b = load_bench(paths)
    assert len(b) == 1
    row = b.iloc[0]
    assert row.p50_us == 101.0 and row.latency_us == 101.0 and row.ram_delta_mb == 12.0 and row.throttled
    assert sorted(session_p50s(row.session_p50_us)) == [100.0, 101.0, 130.0]
