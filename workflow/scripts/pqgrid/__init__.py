"""pqgrid: architecture x sparsity x quantization (x seed x device) for mobile CNNs."""

# Recorded next to every result (provenance.pqgrid_version); raised with each release.
__version__ = "0.15.0"
