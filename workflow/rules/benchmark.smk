# Compute nodes rarely reach the boards in the lab: measure from the submitting host.
if config.get("benchmark_on_submit_host", True):

    localrules:
        benchmark_on_device,


rule benchmark_on_device:
    """Latency and peak memory of one .tflite on one configured device (local or SSH).
    One measurement per device at a time: the harness locks the device itself (flock in
    its remote_dir, so also across workflow instances and cluster jobs), and the resource
    `bench_<device>` keeps one instance from queueing many jobs on one board."""
    input:
        tflite=rules.convert_tflite.output.tflite,
    output:
        bench="results/bench/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.json",
    log:
        "logs/bench/{device}/{arch}/seed{seed}/s{sparsity}_{quant}.log",
    conda:
        "../../envs/device.yaml"
    # A local device is this machine: hold every core so no training or conversion job
    # runs beside the timing. An SSH board needs one local slot only.
    threads: device_threads
    resources:
        **{f"bench_{name}": device_slot(name) for name in DEVICES},
    params:
        device=device_params,
        cell=cell,
    script:
        "../scripts/benchmark_on_device.py"
