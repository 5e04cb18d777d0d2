"""Keras models: the builders (architectures.py for those no package ships, builders.py to
build, load and scale any of them, weights.py for .h5 files), and the stages that fit them:
train.py, prune.py and qat.py on fit.py's shared loop."""
