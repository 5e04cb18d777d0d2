from pqgrid.analysis import load_bench
from pqgrid.io import atomic_path, run_script


def collect(paths, out):
    with atomic_path(out) as tmp:
        load_bench(paths).to_csv(tmp, index=False)


run_script(snakemake.log[0], collect, snakemake.input.bench, snakemake.output.csv)
