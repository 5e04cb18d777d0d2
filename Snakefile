# pqgrid: architecture x sparsity x quantization (x seed) for mobile CNNs, as file targets.
#
# results/
#   data/{train,test}.npz, manifest.json
#   models/{arch}/seed{seed}/trained.h5, trained.history.csv, pruned_{sparsity}.h5,
#     qat_{sparsity}.h5 (+ .json: the QAT Keras model's top-1)
#   tflite/{arch}/seed{seed}/s{sparsity}_{quant}.tflite(.gz)
#   eval/{arch}/seed{seed}/s{sparsity}_{quant}.json, .per_class.csv, keras_s{sparsity}.json,
#     s{sparsity}.layer_error.csv (per-op int8 error), *.predictions.npz (label per test image)
#   pie/{arch}/pie.csv, pie_images.csv, pie_per_class.csv (what compression forgets)
#   bench/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.json (latency, memory), energy/... (power,
#     energy per inference), device_eval/... (.json, .per_class.csv, .predictions.npz: on-device accuracy)
#   tables/summary.csv, summary.md, per_class.csv, bench.csv, layer_error.csv, pie.csv,
#     pie_per_class.csv, table_*.csv/.md
#   figures/{figure}.png, pie_gallery_{arch}.png, findings.md/.csv
#   ship/{device}.md/.json (what to ship), repair/{arch}/seed{seed}/s0_{candidate}.* (int8
#     repaired where no cell qualifies: docs/ship.md)
# logs/ and benchmarks/results/ mirror these paths (one log and one Snakemake benchmark
# file per job).

import os
import sys

from snakemake.utils import min_version, update_config, validate

min_version("9.0")

sys.path.insert(0, f"{workflow.basedir}/workflow/scripts")
from pqgrid.jobs.cli import (
    CommandLineError,
    command_line,
    one_configfile_flag,
    typed_config,
    unknown_targets,
)
from pqgrid.core.catalog import arch_kind
from pqgrid.core.config import check_config
from pqgrid.core.schema import ConfigError, load_schema


# Relative to this file, not to the working directory: `-s path/to/Snakefile` and
# `--directory` work from any folder.
configfile: f"{workflow.basedir}/config.yaml"


# Every value checked before any job, each mistake one line naming its key and the fix.
COMMAND_LINE = command_line(sys.argv[1:])
try:
    one_configfile_flag(sys.argv[1:])
    # --config lists and mappings as YAML types (Snakemake leaves them strings)
    update_config(
        config, typed_config(COMMAND_LINE.config if COMMAND_LINE else [], config)
    )
    check_config(
        config, load_schema(f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
    )
    if any(arch_kind(a) != "builder" for a in config["architectures"].values()):
        # models from outside pqgrid: read once (a Keras model in a child Python, cached)
        from pqgrid.models.imported import check_outside_models

        check_outside_models(config)
except (ConfigError, CommandLineError) as e:
    # One line on stderr and a non-zero exit, no traceback: the line says it all.
    print(f"pqgrid config error: {e}", file=sys.stderr)
    raise SystemExit(1)
# Snakemake's own validation then only fills in the schema's defaults (devices, report).
validate(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")


# Each preset runs in its own folder (run_dir, relative to where snakemake starts);
# `--directory DIR` overrides it, so a copied or moved run folder is addressed as
# `--directory <it>` with the same --configfile.
# Fixed once per run as an absolute path: a cluster job inherits it (sbatch exports the
# environment) and parses this file twice, so a relative folder would be entered twice.
RUN_DIR = os.environ.setdefault("PQGRID_RUN_DIR", os.path.abspath(config["run_dir"]))
if (
    COMMAND_LINE
    and COMMAND_LINE.dryrun
    and not COMMAND_LINE.directory
    and not os.path.isdir(RUN_DIR)
):
    # A dry run makes nothing: where the run folder does not exist yet, Snakemake plans
    # (and keeps its .snakemake/ bookkeeping) in an empty stand-in removed at exit.
    # (`--directory DIR` names the folder itself: Snakemake ignores `workdir:` then.)
    from pqgrid.jobs.cli import stand_in_folder

    workdir: stand_in_folder(RUN_DIR)

else:

    workdir: RUN_DIR


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/qat.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/layer_error.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/pie.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ship.smk"


# Seconds of pandas/seaborn each: not worth a cluster submission.
localrules:
    all,
    collect_bench,
    collect_layer_error,
    collect_pie,
    pie,
    pie_gallery,
    summarize_grid,
    make_table,
    plot_figure,
    check_findings,
    choose_ship,


# Warm starts (pqgrid/jobs/warm.py): one process imports TensorFlow for the run's jobs to fork
# from. Local runs only (cluster jobs run on other hosts); not in dry runs (no hooks).
WARM = {}


onstart:
    if config["warm_start"] and workflow.local_exec and not workflow.remote_exec:
        from pqgrid.jobs.warm import start_server

        WARM["server"] = start_server(".snakemake/log/pqgrid-warm.log")


onsuccess:
    from pqgrid.jobs.warm import stop_server

    stop_server(WARM.get("server"))


onerror:
    from pqgrid.jobs.warm import stop_server

    stop_server(WARM.get("server"))


rule all:
    default_target: True
    input:
        rules.summarize_grid.output,
        rules.collect_layer_error.output if layer_error_models() else [],
        bench_targets(),
        energy_targets(),
        device_accuracy_targets(),
        report_targets(),


# No preset: the full thesis grid. Say so in one line, with the presets a first run wants.
if COMMAND_LINE is not None and not COMMAND_LINE.configfile:
    print(
        "pqgrid: no --configfile: this is the full thesis grid (config.yaml, ~40 CPU-hours); a first run is "
        "--configfile presets/smoke.yaml (~3 min; presets/: smoke, laptop, population, seed003)",
        file=sys.stderr,
    )


# A target no rule makes: one line with the nearest targets of this grid, before the DAG.
_unknown = unknown_targets(
    COMMAND_LINE.targets if COMMAND_LINE else [],
    lambda path: any(r.is_producer(path) for r in workflow.rules),
    every_target,
    {r.name for r in workflow.rules},
)
if _unknown:
    print(f"pqgrid: {_unknown}", file=sys.stderr)
    raise SystemExit(1)
