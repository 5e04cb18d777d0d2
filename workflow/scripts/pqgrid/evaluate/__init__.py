"""Host evaluation and what summarises it: accuracy.py (a .tflite or Keras model on the
test set, per class and per image), pie.py (PIEs over seed populations), summary.py (the
long tables the report reads), stats.py (the intervals and tests every verdict and table uses)."""
