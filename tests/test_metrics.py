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
