"""Stage `prepare_data`: sources (sources.py), splits and the prepared arrays with their
manifest (prepare.py), and the readers every later stage uses (arrays.py)."""
