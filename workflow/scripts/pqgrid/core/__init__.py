"""Shared by every stage, pure Python where the rule files import it at parse time:
the config and its checks, the grid, the table/figure registry, the quantization-mode and
pruning-method tables, file I/O and provenance. How a run runs its jobs (the command line,
each job's settings and code hash, warm starts, logs) is pqgrid/jobs/, statistics
evaluate/stats.py.
`runtime.py` (input scaling, scores, the interpreter, CPU facts) also runs on a device, uploaded
with device/harness.py: standard library + numpy + LiteRT.
Imports point down: stages import core, core imports no stage."""
