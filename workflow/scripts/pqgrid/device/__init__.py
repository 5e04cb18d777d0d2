"""Stages `benchmark`, `energy` and `device_accuracy`: sessions.py reaches a device (this
machine or a board over SSH) and runs device/harness.py there; measure.py turns its output
into one JSON per cell."""
