from pqgrid.jobs.run import by_hand, run_script
from pqgrid.ship.search import plan_repair

by_hand(globals())

run_script(
    snakemake.log[0],
    plan_repair,
    summary_csv=snakemake.input.summary,
    per_class_csv=snakemake.input.per_class,
    bench_csv=snakemake.input.bench,
    device=snakemake.wildcards.device,
    settings=snakemake.params.settings,
    out_json=snakemake.output.plan,
)
