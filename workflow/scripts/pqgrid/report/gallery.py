"""Stage `pie_gallery`: the test images a compressed population forgets (PIEs), each with
its true class and the populations' modal answers before and after."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: jobs draw without a display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pqgrid.core.io import atomic_path, read_csv  # noqa: E402
from pqgrid.data.arrays import load_npz  # noqa: E402
from pqgrid.evaluate.pie import most_forgotten


def gallery_figure(x, tiles: pd.DataFrame, title: str, cols=8):
    """Test images `x[index]` (uint8 RGB, row 0 at the top) with their caption: true class,
    modal label before -> after and how many of the population's models agree."""
    rows = max(1, -(-len(tiles) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, tiles.itertuples(), strict=False):
        ax.imshow(x[r.index], interpolation="nearest")  # uint8 RGB as stored: no rescaling, origin top-left
        ax.set_title(
            f"#{r.index} true: {r.true_class}\n{r.modal_before} ({r.agree_before}/{r.n_models_before}) → "
            f"{r.modal_after} ({r.agree_after}/{r.n_models_after})\n{r.variant}",
            fontsize=7,
        )
    if tiles.empty:
        axes.flat[0].text(0, 0.5, "no PIEs: every compressed population gives the same modal labels", fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def pie_gallery(*, arch, images_csv, test_npz, manifest, tiles, out_png):
    """Stage `pie_gallery`: the most-forgotten test images of one architecture."""

    x, _ = load_npz(test_npz)
    chosen = most_forgotten(read_csv(images_csv), int(tiles))
    fig = gallery_figure(
        x,
        chosen,
        f"{arch}: most-forgotten test images (modal label of the uncompressed population → the compressed one's, "
        "models agreeing; variant that forgot it most)",
    )
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
