# What compressed models forget (Hooker et al. 2019): per architecture, the test images whose
# modal prediction over a compressed seed population differs from the uncompressed one's
# (PIEs), and per-class changes tested across the seed populations (pqgrid/evaluate/pie.py).


rule pie:
    """PIEs and per-class changes of every compressed variant of one architecture against
    its uncompressed population (the trained Keras models, one per seed)."""
    input:
        reference=pie_reference,
        variants=pie_variants,
        manifest=data_file("manifest"),
    output:
        summary="results/pie/{arch}/pie.csv",
        images="results/pie/{arch}/pie_images.csv",
        per_class="results/pie/{arch}/pie_per_class.csv",
    log:
        "logs/pie/{arch}.log",
    conda:
        "../../envs/report.yaml"
    params:
        reference_seeds=GRID["seed"],
        variant_cells=pie_cells,
        alpha=FORGETTING["fdr"],
        code=stage_digest("pie_analysis.py"),
    script:
        "../scripts/pie_analysis.py"


rule collect_pie:
    """Every architecture's PIE summary and per-class changes as long tables
    (results/tables/pie.csv, pie_per_class.csv)."""
    input:
        summary=expand(rules.pie.output.summary, arch=GRID["arch"]),
        per_class=expand(rules.pie.output.per_class, arch=GRID["arch"]),
    output:
        csv=report(
            "results/tables/pie.csv",
            caption="../report/pie.rst",
            category="forgetting",
        ),
        per_class="results/tables/pie_per_class.csv",
    log:
        "logs/tables/pie.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=stage_digest("collect_pie.py"),
    script:
        "../scripts/collect_pie.py"


rule pie_gallery:
    """The most-forgotten test images of one architecture: image, true label, modal label
    before -> after and how many seeds agree."""
    input:
        images=rules.pie.output.images,
        test=data_file("test"),
        manifest=data_file("manifest"),
    output:
        png=report(
            "results/figures/pie_gallery_{arch}.png",
            caption="../report/pie_gallery.rst",
            category="forgetting",
        ),
    log:
        "logs/figures/pie_gallery_{arch}.log",
    conda:
        "../../envs/report.yaml"
    params:
        tiles=FORGETTING["gallery_tiles"],
        code=stage_digest("pie_gallery.py"),
    script:
        "../scripts/pie_gallery.py"
