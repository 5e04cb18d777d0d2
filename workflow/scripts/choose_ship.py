from pqgrid.jobs.run import by_hand, run_script
from pqgrid.ship.choose import choose_ship

by_hand(globals())

run_script(
    snakemake.log[0],
    choose_ship,
    summary_csv=snakemake.input.summary,
    per_class_csv=snakemake.input.per_class,
    bench_csv=snakemake.input.bench,
    device=snakemake.wildcards.device,
    settings=snakemake.params.settings,
    style=snakemake.params.style,
    out_json=snakemake.output.json,
    out_md=snakemake.output.md,
    out_png=snakemake.output.png,
    plan_json=snakemake.input.plan,
    repair_summary_csv=snakemake.input.repair_summary,
    repair_per_class_csv=snakemake.input.repair_per_class,
    repair_bench_csv=snakemake.input.repair_bench,
    record_jsons=snakemake.input.records,
)
