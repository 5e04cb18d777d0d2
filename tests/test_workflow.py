"""The workflow end to end on the smoke preset: real Snakemake, real jobs."""

import gzip
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import SMOKE, SMOKE_RUN, copy_workflow, ran_rules, snakemake


def planned_jobs(wf, *args, configfiles=()):
    """Rule names of the jobs a dry run would execute, and the dry run's text."""
    proc = snakemake(wf, "-n", "all", *SMOKE, *configfiles, *args)
    names = re.findall(r"^(?:local)?rule (\w+):", proc.stdout, re.M)
    return names, proc.stdout


def test_smoke_builds_every_target(smoke_run):
    res = smoke_run / SMOKE_RUN / "results"
    for p in ("data/train.npz", "data/test.npz", "data/manifest.json", "tables/summary.csv", "tables/summary.md"):
        assert (res / p).is_file(), p
    for arch in ("mobilenet_tiny", "v3small_tiny"):
        m = res / "models" / arch / "seed0"
        assert (m / "trained.h5").is_file() and (m / "trained.history.csv").is_file() and (m / "pruned_50.h5").is_file()
        assert not list(m.glob("*.resume")), "resume checkpoints are removed after success"
        for s in (0, 50):
            for q in ("fp32", "int8"):
                tfl = res / "tflite" / arch / "seed0" / f"s{s}_{q}.tflite"
                # the convert job's second output: gzip -9 of exactly that file
                assert gzip.decompress((tfl.parent / f"{tfl.name}.gz").read_bytes()) == tfl.read_bytes()
                metrics = json.loads((res / "eval" / arch / "seed0" / f"s{s}_{q}.json").read_text())
                assert metrics["cell"] == {"arch": arch, "seed": 0, "sparsity": s, "quant": q}
                assert set(metrics["versions"]) >= {
                    "tensorflow",
                    "tf_keras",
                    "tensorflow-model-optimization",
                    "ai-edge-litert",
                }
                assert len(metrics["manifest_sha256"]) == 64 and metrics["settings"]["quantization"]["mode"] == q
                for session in (0, 1):  # presets/smoke.yaml: 2 timing sessions per cell, each its own job
                    bench = json.loads(
                        (res / "bench" / "local" / arch / "seed0" / f"s{s}_{q}.r{session}.json").read_text()
                    )
                    assert bench["count"] == 50 and bench["avg_us"] > 0 and bench["device_name"] == "local"
                pc = pd.read_csv(res / "eval" / arch / "seed0" / f"s{s}_{q}.per_class.csv")
                assert list(pc.columns) == ["class", "support", "correct", "accuracy"] and pc["support"].sum() == 500
    summary = pd.read_csv(res / "tables" / "summary.csv")
    # 2 archs x 2 sparsities x {fp32, int8}, + int16x8 and qat on v3small_tiny at both
    assert len(summary) == 12 and summary[["top1", "top3", "file_bytes", "gzip_bytes"]].notna().all().all()
    assert (smoke_run / SMOKE_RUN / "logs" / "models" / "mobilenet_tiny" / "seed0" / "trained.log").read_text().count(
        "ETA"
    ) == 10  # one line per epoch
    assert (
        smoke_run / SMOKE_RUN / "benchmarks" / "results" / "models" / "mobilenet_tiny" / "seed0" / "trained.tsv"
    ).is_file()


def test_smoke_accuracy_floors(smoke_run):
    """The smoke data are learnable, so accuracy is asserted, not only plumbing: these fail
    on the pre-fix pruning (no recovery, stale BatchNorm statistics: mobilenet_tiny s50 at
    11.8 %, v3small_tiny s50 at 39.6 %)."""
    s = pd.read_csv(smoke_run / SMOKE_RUN / "results" / "tables" / "summary.csv").set_index(
        ["arch", "sparsity", "quant"]
    )
    for arch in ("mobilenet_tiny", "v3small_tiny"):
        trained = s.loc[(arch, 0, "fp32"), "keras_top1_test"]
        assert trained >= 0.90, (arch, trained)
        assert s.loc[(arch, 50, "fp32"), "top1"] >= trained - 0.05, s.loc[arch]  # 50 % pruned: a few points at most
        for sp in (0, 50):
            assert abs(s.loc[(arch, sp, "int8"), "top1"] - s.loc[(arch, sp, "fp32"), "top1"]) <= 0.02, s.loc[arch]
            assert s.loc[(arch, sp, "fp32"), "top1"] == pytest.approx(
                s.loc[(arch, sp, "fp32"), "keras_top1_test"], abs=0.005
            )
    assert not s.collapsed.any() and (s.chance_top1 == 0.1).all()
    # per class: the correct counts add up to the cell's top-1
    pc = pd.read_csv(smoke_run / SMOKE_RUN / "results" / "tables" / "per_class.csv")
    for (arch, sp, q), g in pc.groupby(["arch", "sparsity", "quant"]):
        assert g.correct.sum() / g.support.sum() == pytest.approx(s.loc[(arch, sp, q), "top1"], abs=1e-9)
    # the prune job logs the trained and pruned validation top-1
    log = (smoke_run / SMOKE_RUN / "logs" / "models" / "mobilenet_tiny" / "seed0" / "pruned_50.log").read_text()
    assert "validation top-1: trained" in log and "BatchNorm statistics of" in log


def test_smoke_remedies_qat_pqat_int16x8_and_layer_error(smoke_run):
    """The remedies end to end: QAT at s0, pruning-preserving QAT at 50 %, int16x8, and the
    per-layer int8 error of every model with an int8 cell."""
    res = smoke_run / SMOKE_RUN / "results"
    s = pd.read_csv(res / "tables" / "summary.csv").set_index(["arch", "sparsity", "quant"])
    for sp in (0, 50):
        qat = s.loc[("v3small_tiny", sp, "qat")]
        assert (qat.input_dtype, qat.output_dtype) == ("int8", "int8")
        assert qat.top1 >= s.loc[("v3small_tiny", sp, "fp32"), "top1"] - 0.02, qat
        assert abs(qat.qat_tflite_minus_keras) <= 0.02 and qat.keras_qat_top1 == pytest.approx(
            qat.top1 - qat.qat_tflite_minus_keras
        )
        assert s.loc[("v3small_tiny", sp, "int16x8"), "top1"] >= s.loc[("v3small_tiny", sp, "fp32"), "top1"] - 0.02
        assert (res / "models" / "v3small_tiny" / "seed0" / f"qat_{sp}.h5").is_file()
    pqat = s.loc[("v3small_tiny", 50, "qat")]
    assert (
        pqat.kernel_sparsity_before_qat > 0.4
        and abs(pqat.tflite_kernel_sparsity - pqat.kernel_sparsity_before_qat) <= 0.005
    )
    assert ("mobilenet_tiny", 0, "qat") not in s.index  # quantization.subsets
    le = pd.read_csv(res / "tables" / "layer_error.csv")
    assert set(map(tuple, le[["arch", "sparsity"]].drop_duplicates().values)) == {
        (a, p) for a in ("mobilenet_tiny", "v3small_tiny") for p in (0, 50)
    }
    assert (le.groupby(["arch", "sparsity"])["rank"].min() == 1).all() and le.rmse_over_scale.notna().all()
    rem = pd.read_csv(res / "tables" / "table_remedies.csv")
    assert set(rem.arch) == {"v3small_tiny"} and {"fp32_top1", "int8_top1", "int16x8_top1", "qat_top1"} <= set(
        rem.columns
    )
    findings = pd.read_csv(res / "findings.csv").set_index("no")
    assert findings.loc[13, "verdict"] == "holds"  # PQAT keeps the zeros
    for no in (2, 8, 12, 14):  # no evidence for them in a run this small
        assert findings.loc[no, "verdict"] != "holds", findings.loc[no].to_dict()
    assert (res / "figures" / "layer_error_worst.png").stat().st_size > 2000


def test_predictions_agree_with_the_per_class_csv_and_feed_the_forgetting_analysis(smoke_run):
    """Every cell's per-image predictions give its per-class counts and top-1; the Keras
    model's give its test top-1; the PIE stage turns them into tables and a gallery."""
    import numpy as np
    from pqgrid.core.io import read_predictions

    res = smoke_run / SMOKE_RUN / "results"
    s = pd.read_csv(res / "tables" / "summary.csv")
    test_sha = None
    for r in s.itertuples():
        cell = res / "eval" / r.arch / f"seed{r.seed}" / f"s{r.sparsity}_{r.quant}"
        p = read_predictions(f"{cell}.predictions.npz")
        test_sha = test_sha or p["test_sha256"]
        assert p["test_sha256"] == test_sha and len(p["label"]) == 500
        assert (p["label"] == p["true"]).mean() == pytest.approx(r.top1, abs=1e-9)
        pc = pd.read_csv(f"{cell}.per_class.csv")
        assert pc.correct.tolist() == [int(((p["label"] == i) & (p["true"] == i)).sum()) for i in range(len(pc))]
        assert ((p["confidence"] > 0) & (p["confidence"] <= 1.0001)).all()
        k = read_predictions(res / "eval" / r.arch / f"seed{r.seed}" / f"keras_s{r.sparsity}.predictions.npz")
        assert (k["label"] == k["true"]).mean() == pytest.approx(r.keras_top1_test, abs=1e-9)
        assert np.array_equal(k["true"], p["true"])
    pie = pd.read_csv(res / "tables" / "pie.csv").set_index(["arch", "variant"])
    assert len(pie) == len(s) and (pie.n_models == 1).all()
    # the fp32 conversion is no compression: (almost) every answer of the Keras model kept
    assert (pie.xs("s0 fp32", level="variant").pie_rate <= 0.01).all()
    images = pd.read_csv(res / "pie" / "mobilenet_tiny" / "pie_images.csv")
    assert len(images) == pie.loc["mobilenet_tiny"].pies.sum()
    assert set(pd.read_csv(res / "tables" / "pie_per_class.csv").arch) == {"mobilenet_tiny", "v3small_tiny"}
    for arch in ("mobilenet_tiny", "v3small_tiny"):
        assert (res / "figures" / f"pie_gallery_{arch}.png").stat().st_size > 2000
    assert (res / "figures" / "pie_rate.png").stat().st_size > 2000
    findings = pd.read_csv(res / "findings.csv").set_index("no")
    assert findings.loc[15, "verdict"] == "not measured"  # one seed is not a population


def test_the_report_hint_keeps_what_decides_the_report():
    """The closing line's report command: the config files, --config, --directory and
    --snakefile of the run kept, targets and cores dropped, the report at an absolute path in
    the run's folder; a config list ends at the next option (it once swallowed --directory's
    folder)."""
    from snakemake_logger_plugin_pqgrid import report_hint

    argv = ["--cores", "1", "all", "--configfile", "presets/smoke.yaml", "--directory", "DIR"]
    assert report_hint(argv, "/x/DIR/runs/smoke", ".venv/bin/snakemake") == (
        ".venv/bin/snakemake --report /x/DIR/runs/smoke/report.html --configfile presets/smoke.yaml --directory DIR"
    )
    argv = ["-c2", "results/ship/local.md", "--configfile", "a.yaml", "b.yaml", "--config", "ship={repair: false}",
            "-s", "../wf/Snakefile", "--dry-run"]  # fmt: skip
    assert report_hint(argv, "/r") == (
        "snakemake --report /r/report.html --configfile a.yaml b.yaml --config 'ship={repair: false}' -s ../wf/Snakefile"
    )


def test_console_is_quiet_and_logs_hold_the_noise(smoke_run):
    """TensorFlow's start-up notices go to each job's log, not the terminal; the terminal
    has a header, one line per finished job with progress and time left, and where the
    results are (the pqgrid logger, profiles/default)."""
    console = (smoke_run / "console.txt").read_text()
    for noise in ("cuInit", "oneDNN", "absl::InitializeLog", "cuda_platform", "Shell command", "Select jobs"):
        assert noise not in console, noise
    lines = console.strip().splitlines()
    header = re.search(r"^pqgrid: (\d+) jobs to run in .*runs/smoke", console, re.M)
    jobs = int(header[1])
    progress = re.findall(r"^\[ *(\d+)/(\d+) +\d+%\] \w+", console, re.M)
    assert len(progress) == jobs - 1  # every job but `all`
    assert int(progress[-1][0]) in (jobs - 1, jobs) and "left)" in console
    assert len(lines) <= 2 * jobs + 10, "at most 2 lines per job beside a header and the closing lines"
    assert re.search(r"^pqgrid: findings .*runs/smoke/results/findings.md", console, re.M)
    assert re.search(r"^pqgrid: one HTML report: \S*snakemake --report /\S+/runs/smoke/report.html --configfile presets/smoke.yaml$",
                     console, re.M), console[-600:]  # fmt: skip
    log = (smoke_run / SMOKE_RUN / "logs" / "models" / "mobilenet_tiny" / "seed0" / "trained.log").read_text()
    assert "epoch 10/10" in log


def test_second_run_has_nothing_to_do(smoke_run):
    proc = snakemake(smoke_run, "--cores", "2", "all", *SMOKE)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_touching_one_trained_model_reruns_exactly_its_downstream(smoke_run):
    target = smoke_run / SMOKE_RUN / "results/models/mobilenet_tiny/seed0/trained.h5"
    before = target.stat()
    now = time.time() + 5
    os.utime(target, (now, now))
    try:
        names, out = planned_jobs(smoke_run)
    finally:
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    # the other architecture's cells stay; only the grid-wide tables and figures redraw
    assert not re.search(r"output: results/(models|tflite|eval|bench/local)/v3small_tiny", out)
    cell_rules = (
        "prune_model",
        "evaluate_keras",
        "convert_tflite",
        "evaluate_tflite",
        "benchmark_on_device",
    )
    assert sorted(n for n in names if n in cell_rules) == sorted(
        ["prune_model"]
        + ["evaluate_keras"] * 2
        + ["convert_tflite"] * 4
        + ["evaluate_tflite"] * 4
        + ["benchmark_on_device"] * 4 * 2  # 2 timing sessions per cell
    )
    assert "train_model" not in names and "prepare_data" not in names


def test_changing_one_architecture_reruns_only_it(smoke_run):
    # an overlay file, as the README advises: --config would pass `true` as the string 'true'
    (smoke_run / "dropout.yaml").write_text(
        "architectures:\n  v3small_tiny: {builder: MobileNetV3Small, alpha: 0.75, minimalistic: true, dropout_rate: 0.3}\n"
    )
    names, out = planned_jobs(smoke_run, configfiles=["dropout.yaml"])
    assert "train_model" in names
    outputs = re.findall(r"output: ([^\n]+)", out)
    assert any("results/models/v3small_tiny/seed0/trained.h5" in o for o in outputs)
    assert not [o for o in outputs if re.match(r"results/(models|tflite|eval|bench/local)/mobilenet_tiny", o)]


def test_two_clean_runs_give_identical_metrics(smoke_run, tmp_path):
    """A second clean run of one architecture's part of the grid (training, pruning, fp32 and
    int8; a third of the smoke run's time - the QAT path's determinism is tested in
    test_qat.py) writes byte-identical metrics and predictions. It builds those files only,
    as targets: the device, report and figure jobs that read them are not what is compared."""
    other = copy_workflow(tmp_path / "again")
    (other / "one_arch.yaml").write_text(
        "grid_architectures: [mobilenet_tiny]\nquantization:\n  modes: [fp32, int8]\n  subsets: null\n"
    )
    a = sorted((smoke_run / SMOKE_RUN / "results" / "eval" / "mobilenet_tiny").rglob("*.json"))
    a += sorted((smoke_run / SMOKE_RUN / "results" / "eval" / "mobilenet_tiny").rglob("*.predictions.npz"))
    assert len(a) == 12  # 4 cells + 2 Keras models, metrics and predictions
    targets = [str(p.relative_to(smoke_run / SMOKE_RUN)) for p in a]
    snakemake(other, "--cores", "2", *targets, *SMOKE, "one_arch.yaml")
    for p in a:
        rel = p.relative_to(smoke_run)
        assert (other / rel).read_bytes() == p.read_bytes(), rel


# ------------------------------------------------------------------ report stage
def test_one_figure_rebuilds_alone(smoke_run):
    fig = smoke_run / SMOKE_RUN / "results/figures/pareto_gzip.png"
    fig.unlink()
    proc = snakemake(smoke_run, "--cores", "2", "results/figures/pareto_gzip.png", *SMOKE)
    ran = ran_rules(proc.stdout + proc.stderr)
    assert ran == ["plot_figure"] and fig.is_file()


def test_changing_a_plot_setting_reruns_only_that_figure(smoke_run):
    (smoke_run / "label3.yaml").write_text("report: {figures: {per_figure: {pareto_gzip: {label_top: 3}}}}\n")
    names, out = planned_jobs(smoke_run, configfiles=["label3.yaml"])
    assert sorted(names) == ["all", "plot_figure"]
    assert re.findall(r"^\s+output: (results/[^\n]+)", out, re.M) == ["results/figures/pareto_gzip.png"]


def test_without_devices_device_figures_are_left_out_or_placeholders(smoke_run):
    (smoke_run / "nodevices.yaml").write_text("devices: null\n")
    names, out = planned_jobs(smoke_run, configfiles=["nodevices.yaml"])
    assert "benchmark_on_device" not in names and "pareto_latency_local" not in out


# `slow`: the SSH path, two devices in one grid and on-device accuracy run in CI on the emulated
# board (tests/test_arm_board.py), the power readers in tests/test_device.py.
@pytest.mark.slow
def test_a_grid_on_two_devices_local_and_loopback(smoke_run, sshd, tmp_path):
    """The smoke grid on two devices at once: `local` with on-device accuracy and a FIXTURE
    power meter (`echo`, standing in for a USB meter; no figure from it is reported), and a
    real loopback sshd with on-device accuracy. Only the device stage and what reads it run;
    every cell's on-device answers equal the host evaluation's exactly, image by image."""
    import shutil

    import numpy as np
    import yaml

    wf = tmp_path / "wf"
    shutil.copytree(smoke_run, wf, symlinks=True)  # copies keep their mtimes: nothing upstream is stale
    meter = {"command": "echo 2.5 W", "interval_seconds": 0.1, "idle_seconds": 0.3, "load_seconds": 0.3}
    devices = {
        "local": {"type": "local", "threads": 1, "accuracy": True, "power": meter},
        # one timing session: this test is about the devices' other measurements
        "loopback": {**sshd.device(), "accuracy": True, "repeats": 1},
    }
    (wf / "two-devices.yaml").write_text(yaml.safe_dump({"devices": devices}))
    # the files asserted below, not `all`: the other figures and tables redraw the same way
    # after any device change (tests/test_report.py), ~25 jobs here
    targets = [f"results/{f}" for f in ("tables/bench.csv", "tables/summary.csv", "tables/table_devices.csv", "findings.csv",
                                        "figures/energy_vs_top1.png", "figures/pareto_latency_loopback.png")]  # fmt: skip
    proc = snakemake(wf, "--cores", "2", *targets, "--configfile", "presets/smoke.yaml", "two-devices.yaml")
    ran = ran_rules(proc.stdout + proc.stderr)
    for upstream in ("train_model", "convert_tflite", "evaluate_tflite"):
        assert upstream not in ran
    assert ran.count("benchmark_on_device") == 12, "local's timings stay: accuracy and power are not latency settings"
    assert ran.count("accuracy_on_device") == 24 and ran.count("energy_on_device") == 12
    res = wf / SMOKE_RUN / "results"
    bench = pd.read_csv(res / "tables" / "bench.csv")
    summary = pd.read_csv(res / "tables" / "summary.csv")
    assert len(bench) == 24 and set(bench.device) == {"local", "loopback"}
    merged = bench.merge(
        summary[["arch", "seed", "sparsity", "quant", "top1"]], on=["arch", "seed", "sparsity", "quant"]
    )
    assert (merged.top1_device == merged.top1).all() and (merged.top1_host_diff_pp == 0).all()
    assert (merged.answers_differing_from_host == 0).all()
    assert (summary.top1_on_local == summary.top1).all() and (summary.top1_diff_pp_loopback == 0).all()
    for r in bench.itertuples():
        name = f"{r.arch}/seed{r.seed}/s{r.sparsity}_{r.quant}.predictions.npz"
        with np.load(res / "eval" / name) as host, np.load(res / "device_eval" / r.device / name) as dev:
            assert (host["label"] == dev["label"]).all() and (host["confidence"] == dev["confidence"]).all(), name
    local, loop = bench[bench.device == "local"], bench[bench.device == "loopback"]
    assert (local.energy_method == "command on the host").all() and (local.power_load_w == 2.5).all()
    assert (local.energy_mj_per_inference > 0).all() and loop.energy_mj_per_inference.isna().all()
    table = pd.read_csv(res / "tables" / "table_devices.csv")
    assert set(table.device) == {"local", "loopback"} and len(table) == 24
    assert set(table[table.device == "loopback"].energy_method) == {"not measured"}
    findings = pd.read_csv(res / "findings.csv").set_index("no")
    assert findings.loc[19, "verdict"] == "holds" and "loopback (x86_64): 12 cells" in findings.loc[19, "measured"]
    assert (res / "figures" / "energy_vs_top1.png").stat().st_size > 10_000
    assert (res / "figures" / "pareto_latency_loopback.png").is_file()


def test_report_html_renders_with_figures(smoke_run, tmp_path):
    """The report made by the command the run's closing line printed, as printed, from where
    the run started."""
    import shlex
    import shutil
    import subprocess

    hint = re.search(r"^pqgrid: one HTML report: (.+)$", (smoke_run / "console.txt").read_text(), re.M)[1]
    subprocess.run(shlex.split(hint), cwd=smoke_run, check=True, capture_output=True, timeout=600)
    html = (smoke_run / SMOKE_RUN / "report.html").read_text(errors="replace")
    for name in ("pareto_gzip.png", "per_class_pruning_mobilenet_tiny.png", "findings.html", "table_4_1_training.html"):
        assert name in html, name
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run does)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1280,900",
            "--virtual-time-budget=8000",
            f"file://{smoke_run / SMOKE_RUN / 'report.html'}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] > 500 and img[..., :3].std() > 0.05, "screenshot is blank"
    # The findings and a table are pages the viewer shows, not downloads: clicked open in the
    # report (headless Chromium driven by Playwright), their text is rendered in the page.
    findings = pd.read_csv(smoke_run / SMOKE_RUN / "results/findings.csv")
    table = pd.read_csv(smoke_run / SMOKE_RUN / "results/tables/table_4_1_training.csv")
    shown = _report_pages_text(
        browser, smoke_run / SMOKE_RUN / "report.html", [("findings", "findings"), ("tables", "table_4_1_training")]
    )
    assert shown["findings"].startswith("Findings: the thesis' claims"), shown["findings"][:200]
    for claim in findings.claim:
        assert claim.split(":")[0][:40] in shown["findings"], claim
    assert "holds" in shown["findings"] and str(findings.verdict.iloc[0]) in shown["findings"]
    assert "table_4_1_training" in shown["table_4_1_training"]
    assert all(arch in shown["table_4_1_training"] for arch in table.arch), shown["table_4_1_training"][:300]


def _report_pages_text(browser: str, report: Path, pages) -> dict:
    """The text of each (category, label) result of Snakemake's report, opened as a user
    does: the category in the menu, then the result's view button; its page is an iframe."""
    from playwright.sync_api import sync_playwright

    text = {}
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        try:
            for category, label in pages:
                page = chrome.new_page()
                page.goto(report.as_uri())
                page.get_by_text(category, exact=True).first.click()
                page.locator("tr", has_text=label).last.locator("a").first.click()
                text[label] = page.frame_locator("iframe").first.locator("body").inner_text(timeout=30_000)
                page.close()
        finally:
            chrome.close()
    return text


def test_a_damaged_intermediate_file_stops_its_reader_with_one_line(smoke_run):
    """Last in this module: it breaks the smoke results for a moment, then restores them."""
    target = smoke_run / SMOKE_RUN / "results/eval/mobilenet_tiny/seed0/s0_fp32.json"
    good = target.read_bytes()
    target.write_bytes(b"")  # a killed job or a full disk
    try:
        proc = snakemake(smoke_run, "--cores", "1", "results/tables/summary.csv", *SMOKE, check=False)
        # one line at the terminal: the job, the job's own error and its log's absolute path;
        # Snakemake's exception lines only in its log file
        lines = [line for line in proc.stderr.splitlines() if line.startswith("pqgrid:")]
        assert proc.returncode != 0 and lines[1:] == [
            "pqgrid: FAILED summarize_grid: DamagedFile: results/eval/mobilenet_tiny/seed0/s0_fp32.json: empty file "
            "(0 bytes: a killed job or a full disk?); delete it and rerun; "
            f"log: {smoke_run / SMOKE_RUN / 'logs/tables/summary.log'}"
        ], proc.stderr[-2000:]
        assert lines[0].startswith("pqgrid: 1 job to run in ")
        for snakemakes_own in ("RuleException", "CalledProcessError", "WorkflowError", "Exiting because"):
            assert snakemakes_own not in proc.stderr, proc.stderr[-2000:]
        assert not (smoke_run / SMOKE_RUN / "results/tables/summary.csv").exists()  # nothing downstream written
    finally:
        target.write_bytes(good)
        snakemake(smoke_run, "--cores", "1", "results/tables/summary.csv", *SMOKE)


def test_an_architecture_with_its_own_input_size_reads_its_own_data(tmp_path):
    """input_size: the data stage runs once more at that size (results/data/40px/), and every
    job of that architecture - and only of it - reads it."""
    wf = copy_workflow(tmp_path / "wf")
    (wf / "size.yaml").write_text(
        "architectures:\n  v3small_tiny: {builder: MobileNetV3Small, alpha: 0.75, minimalistic: true, input_size: 40}\n"
    )
    proc = snakemake(wf, "-n", "all", *SMOKE, "size.yaml", "--printshellcmds")
    assert "results/data/40px/train.npz" in proc.stdout
    assert re.search(r"rule prepare_data_resized:\n\s+output: results/data/40px/train.npz", proc.stdout)
    checked = 0
    for b in proc.stdout.split("\n\n"):
        if "rule train_model:" in b or "rule convert_tflite:" in b:
            wanted = "results/data/40px/" if "v3small_tiny" in b else "results/data/train.npz"
            assert wanted in b, b
            checked += 1
    assert checked >= 4


def test_a_weights_file_is_part_of_training_by_content(smoke_run):
    """A pretrained start: the file's content is a training param (replacing the file
    retrains), its path relative to the workflow's folder (not the run folder)."""
    (smoke_run / "w.h5").write_bytes(b"placeholder: the dry run only plans")
    (smoke_run / "pre.yaml").write_text("architectures:\n  mobilenet_tiny: {weights: w.h5}\n")
    reasons = []
    for content in (b"placeholder: the dry run only plans", b"another placeholder"):
        (smoke_run / "w.h5").write_bytes(content)
        names, out = planned_jobs(smoke_run, configfiles=["pre.yaml"])
        block = next(b for b in out.split("\n\n") if "rule train_model:" in b)
        assert names.count("train_model") == 1 and "mobilenet_tiny" in block
        reasons.append(re.search(r"reason: Params have changed.*", block)[0])
    assert reasons[0] != reasons[1]  # the file's digest is in the params


def test_export_mlflow_reads_back_with_mlflows_client(smoke_run, tmp_path):
    """`snakemake export_mlflow`: every cell one MLflow run under one parent, read back with
    MLflow's own client - its settings as params, top-1 and sizes as in summary.csv, each
    device's latency, the per-class table and the .tflite as artifacts."""
    import mlflow

    store = tmp_path / "store.db"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}", "MLFLOW_EXPERIMENT_NAME": "smoke"}
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(exe), "--cores", "2", "export_mlflow", *SMOKE], cwd=smoke_run, capture_output=True, text=True,
        env={**os.environ, **env}, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(smoke_run / SMOKE_RUN / "results/tables/summary.csv")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`pqgrid.cell` != ''", max_results=100)
    assert len(runs) == len(summary) == 12
    for run in runs:
        p = run.data.params
        row = summary[
            (summary.arch == p["arch"])
            & (summary.sparsity.astype(str) == p["sparsity"])
            & (summary["quant"] == p["quant"])
        ].iloc[0]
        assert run.data.metrics["top1"] == pytest.approx(row.top1) and run.data.metrics["file_bytes"] == row.file_bytes
        assert "local.p50_us" in run.data.metrics and p["tflite_sha256"] == row.tflite_sha256
        assert run.data.tags["mlflow.parentRunId"] and run.data.tags["pqgrid.version"]
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "per_class.csv" in names and [n for n in names if n.endswith(".tflite")], names
