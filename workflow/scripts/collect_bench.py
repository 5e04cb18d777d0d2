from pqgrid.evaluate.summary import collect_bench
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

run_script(
    snakemake.log[0],
    collect_bench,
    bench_jsons=snakemake.input.bench,
    energy_jsons=snakemake.input.energy,
    device_eval_jsons=snakemake.input.device_eval,
    out_csv=snakemake.output.csv,
)
