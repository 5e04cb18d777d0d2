"""Stage `export_mlflow`: every cell of the run as one MLflow run, where a team looks for
results - its settings as params, its metrics (accuracy, sizes, sparsity, each device's
latency and memory), its per-class table and its .tflite as artifacts - under one parent
run per export, tagged with pqgrid's version and the run folder. Written through MLflow's
own client (no hand-written store format); the default store is a SQLite file in the run
folder (`mlruns/mlflow.db`, artifacts beside it): MLflow 3 keeps plain-folder stores in
maintenance mode."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import pandas as pd

from pqgrid.core.io import read_csv, write_json
from pqgrid.core.provenance import pqgrid_version

KEY = ["arch", "seed", "sparsity", "quant"]
# summary.csv columns that say what a cell is (params), not what it measured (metrics)
SETTINGS = ("builder", "label", "input_px", "input_dtype", "output_dtype", "m_by_n", "tflite_sha256")
# bench.csv columns logged per device as <device>.<column>
DEVICE_METRICS = (
    "latency_us",
    "p50_us",
    "p90_us",
    "ram_delta_mb",
    "process_peak_rss_mb",
    "energy_mj_per_inference",
    "top1_device",
    "answers_differing_from_host",
)


def cell_name(row) -> str:
    return f"{row.arch} seed{row.seed} s{row.sparsity} {row.quant}"


def export_mlflow(
    *, summary_csv, per_class_csv, bench_csv, tflites, run_dir, out_json, tracking_uri=None, experiment=None
):
    """Log every cell of summary.csv to `tracking_uri` (default: MLflow's own
    MLFLOW_TRACKING_URI, else `mlruns/mlflow.db` in the run folder) under `experiment`
    (default: MLFLOW_EXPERIMENT_NAME, else "pqgrid"); `tflites` maps "<arch> seed<s> s<sp>
    <quant>" to its .tflite. Writes the store, experiment and run ids to `out_json`."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlruns/mlflow.db').resolve()}"
    experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "pqgrid"
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    experiment_id = _experiment_id(client, experiment)
    summary = read_csv(summary_csv)
    per_class = read_csv(per_class_csv)
    bench = read_csv(bench_csv) if bench_csv else pd.DataFrame()
    version = pqgrid_version()
    tags = {
        "pqgrid.version": version["version"],
        "pqgrid.commit": str(version["commit"]),
        "pqgrid.run_dir": str(run_dir),
    }
    ids = {}
    parent = client.create_run(experiment_id, run_name=f"pqgrid {Path(run_dir).name}", tags=tags)
    for row in summary.itertuples(index=False):
        name = cell_name(row)
        run = client.create_run(
            experiment_id, run_name=name, tags={**tags, "mlflow.parentRunId": parent.info.run_id, "pqgrid.cell": name}
        )
        rid = run.info.run_id
        params = {k: getattr(row, k) for k in (*KEY, *SETTINGS) if hasattr(row, k)}
        metrics = {
            k: float(v)
            for k, v in row._asdict().items()
            if k not in params and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        metrics.update(_device_metrics(bench, row))
        client.log_batch(
            rid,
            params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()],
            metrics=[mlflow.entities.Metric(k, v, 0, 0) for k, v in metrics.items()],
        )
        _log_per_class(client, rid, per_class, params)
        if name in tflites:
            client.log_artifact(rid, str(tflites[name]))
        client.set_terminated(rid)
        ids[name] = rid
    client.set_terminated(parent.info.run_id)
    write_json(out_json, {"tracking_uri": uri, "experiment": experiment, "parent": parent.info.run_id, "runs": ids})


def _experiment_id(client, experiment: str) -> str:
    """The id of the MLflow experiment named `experiment`, created (artifacts under
    mlruns/artifacts) where it does not exist."""
    found = client.get_experiment_by_name(experiment)
    if found:
        return found.experiment_id
    return client.create_experiment(experiment, artifact_location=Path("mlruns/artifacts").resolve().as_uri())


def _log_per_class(client, rid, per_class: pd.DataFrame, params: dict) -> None:
    """The cell's rows of per_class.csv as the run's artifact per_class.csv."""
    with tempfile.TemporaryDirectory() as tmp:
        cls = per_class[(per_class[KEY] == pd.Series(params)[KEY]).all(axis=1)] if len(per_class) else per_class
        path = Path(tmp) / "per_class.csv"
        cls.to_csv(path, index=False)
        client.log_artifact(rid, str(path))


def _device_metrics(bench: pd.DataFrame, row) -> dict:
    if bench.empty:
        return {}
    mine = bench[(bench[KEY] == pd.Series({k: getattr(row, k) for k in KEY})).all(axis=1)]
    out = {}
    for r in mine.itertuples(index=False):
        for col in DEVICE_METRICS:
            v = getattr(r, col, None)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                out[f"{r.device}.{col}"] = float(v)
    return out
