"""Stage `convert_tflite` and what reads its files: convert.py (every quantization mode,
the gzip copy), layer_error.py (per-layer error of a quantized model against fp32),
tflite_weights.py (kernels and sparsity read from the flatbuffer)."""
