"""Shared by every stage, pure Python where the rule files import it at parse time:
the config and its checks, the settings each job receives, the table/figure registry, the
quantization-mode and pruning-method tables, file I/O and provenance. How a job runs is
pqgrid/jobs/, statistics are evaluate/stats.py.
`runtime.py` (input scaling, scores, the interpreter, CPU facts) also runs on a device, uploaded
with device/harness.py: standard library + numpy + LiteRT.
Imports point down: stages import core, core imports no stage."""
