# The device stage: latency, energy and on-device accuracy of each cell on each device
# (local or SSH), three rules with three outputs so that one failing never costs another's
# result. All hold the device: the harness locks it (flock in its remote_dir, so also across
# workflow instances and cluster jobs), and the resource `bench_<device>` keeps one
# instance from queueing many jobs on one board.

# Compute nodes rarely reach the boards in the lab: measure from the submitting host.
if config.get("benchmark_on_submit_host", True):

    localrules:
        setup_device,
        benchmark_on_device,
        energy_on_device,
        accuracy_on_device,


rule setup_device:
    """The pinned numpy and ai-edge-litert set up on a board with `setup: packages`
    (device/setup.py): the board's facts checked, the packages for its platform sent up.
    """
    output:
        setup="results/devices/{device}.setup.json",
    log:
        "logs/devices/{device}.setup.log",
    conda:
        "../../envs/device.yaml"
    params:
        device=device_params("setup"),
        pins=board_pins(),
        code=stage_digest("setup_device.py"),
    script:
        "../scripts/setup_device.py"


rule benchmark_on_device:
    """Latency and peak memory of one .tflite on one configured device: one timing session
    (session `repeat` of the device's `repeats`; the latency findings compare sessions).
    """
    input:
        tflite=rules.convert_tflite.output.tflite,
        setup=device_setup,
    output:
        bench="results/bench/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.r{repeat}.json",
    log:
        "logs/bench/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.r{repeat}.log",
    priority: session_priority
    conda:
        "../../envs/device.yaml"
    # A local device is this machine: hold every core so no training or conversion job
    # runs beside the timing. An SSH board needs one local slot only.
    threads: device_threads
    resources:
        **{f"bench_{name}": device_slot(name) for name in DEVICES},
    params:
        device=device_params("latency"),
        cell=cell,
        code=stage_digest("benchmark_on_device.py"),
    script:
        "../scripts/benchmark_on_device.py"


rule energy_on_device:
    """Power idle and under load, and energy per inference, of one .tflite on a device
    with a `power` source."""
    input:
        tflite=rules.convert_tflite.output.tflite,
        setup=device_setup,
    output:
        energy="results/energy/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.json",
    log:
        "logs/energy/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.log",
    conda:
        "../../envs/device.yaml"
    threads: device_threads
    resources:
        **{f"bench_{name}": device_slot(name) for name in DEVICES},
    params:
        device=device_params("energy"),
        cell=cell,
        code=stage_digest("energy_on_device.py"),
    script:
        "../scripts/energy_on_device.py"


rule accuracy_on_device:
    """The cell's test set through the device's interpreter: top-1/top-3, per class and
    per image, beside the host's evaluation (devices with `accuracy: true`)."""
    input:
        tflite=rules.convert_tflite.output.tflite,
        test=data_file("test"),
        manifest=data_file("manifest"),
        host=rules.evaluate_tflite.output.metrics,
        host_predictions=rules.evaluate_tflite.output.predictions,
        setup=device_setup,
    output:
        metrics="results/device_eval/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.json",
        per_class="results/device_eval/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.per_class.csv",
        predictions="results/device_eval/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.predictions.npz",
    log:
        "logs/device_eval/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.log",
    conda:
        "../../envs/device.yaml"
    threads: device_threads
    resources:
        **{f"bench_{name}": device_slot(name) for name in DEVICES},
    params:
        device=device_params("accuracy"),
        model=model_params,
        batch_size=config["evaluation"]["batch_size"],
        cell=cell,
        code=stage_digest("accuracy_on_device.py"),
    script:
        "../scripts/accuracy_on_device.py"
