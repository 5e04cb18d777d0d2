# What to ship: per device, the compressed cell with the best objective within the accuracy
# budget (config `ship:`; pqgrid/ship/choose.py). It reads only the long tables, so a
# changed budget reruns this job alone.


rule choose_ship:
    """Per architecture the cell to ship on one device, its runners-up, the classes it
    loses most, or "no cell qualifies" with the closest one; one line across the grid.
    """
    input:
        summary=rules.summarize_grid.output.csv,
        per_class=rules.summarize_grid.output.per_class,
        bench=rules.collect_bench.output.csv,
    output:
        json="results/ship/{device}.json",
        md=report(
            "results/ship/{device}.md",
            caption="../report/ship.rst",
            category="what to ship",
        ),
        png=report(
            "results/figures/ship_{device}.png",
            caption="../report/ship.rst",
            category="what to ship",
        ),
    log:
        "logs/ship/{device}.log",
    wildcard_constraints:
        device=_alternatives(SHIP_DEVICES) if SHIP_DEVICES else "(?!)",
    conda:
        "../../envs/report.yaml"
    params:
        settings=config["ship"],
        style=config["report"]["figures"]["style"],
        code=stage_digest("choose_ship.py"),
    script:
        "../scripts/choose_ship.py"
