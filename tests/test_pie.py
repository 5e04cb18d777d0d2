"""What compressed models forget: PIEs over seed populations, intervals, BH, the gallery."""

import numpy as np
import pandas as pd
import pytest
from pqgrid.core.io import read_predictions
from pqgrid.evaluate import accuracy as evaluate_accuracy
from pqgrid.evaluate import pie, stats
from pqgrid.report import findings
from pqgrid.report import gallery as report_gallery

CLASSES = ["cat", "dog", "bird"]
Y = np.array([0, 0, 1, 1, 2, 2])


def preds(labels, y=Y, sha="abc"):
    """One model's predictions as read_predictions returns them."""
    labels = np.asarray(labels)
    return {"label": labels, "confidence": np.ones(len(labels)), "true": y, "test_sha256": sha}


# Uncompressed: image 0..5 modal labels 0,0,1,1,2,2 (3 of 3 agree except image 5: 2 of 3).
REF = [preds([0, 0, 1, 1, 2, 2]), preds([0, 0, 1, 1, 2, 0]), preds([0, 0, 1, 1, 2, 2])]
# Compressed: image 1 -> modal 1 (2 of 3), image 5 -> modal 0 (2 of 3), the rest kept.
VAR = [preds([0, 1, 1, 1, 2, 0]), preds([0, 1, 1, 1, 2, 0]), preds([0, 0, 1, 1, 2, 2])]


def test_modal_labels_count_votes_and_break_ties_to_the_lowest_class():
    # rows: models, columns: images. Image 0 votes 2/1/0 and image 2 votes 0/2/1: ties -> 0.
    modal, agree = pie.modal_labels(np.array([[2, 1, 0], [1, 1, 2], [0, 1, 1], [1, 1, 1]]), 3)
    assert modal.tolist() == [1, 1, 1] and agree.tolist() == [2, 4, 2]
    modal, agree = pie.modal_labels(np.array([[2, 1, 0], [1, 1, 2], [0, 1, 1]]), 3)
    assert modal.tolist() == [0, 1, 0] and agree.tolist() == [1, 3, 1]
    # a preferred label (the uncompressed population's) wins a tie, not a majority
    modal, agree = pie.modal_labels(np.array([[2, 1, 0], [1, 1, 2], [0, 1, 1]]), 3, prefer=np.array([2, 0, 2]))
    assert modal.tolist() == [2, 1, 2] and agree.tolist() == [1, 3, 1]


def test_a_tie_in_the_compressed_population_is_no_pie():
    ref = [preds([0, 0, 1, 1, 2, 2]), preds([0, 0, 1, 1, 2, 2])]
    one_of_two_wrong = [preds([0, 1, 1, 1, 2, 2]), preds([0, 0, 1, 1, 2, 2])]
    summary, images, _ = pie.analyse(ref, [0, 1], {("50", "fp32"): list(enumerate(one_of_two_wrong))}, CLASSES)
    assert summary.pies.iloc[0] == 0 and images.empty


def test_pies_against_hand_made_populations():
    summary, images, per_class = pie.analyse(REF, [0, 1, 2], {("50", "fp32"): list(enumerate(VAR))}, CLASSES)
    row = summary.iloc[0]
    assert row.pies == 2 and row.pie_rate == pytest.approx(2 / 6) and row.n_models == 3
    assert images["index"].tolist() == [1, 5]
    img1 = images.iloc[0]
    assert (img1.true_class, img1.modal_before, img1.agree_before, img1.modal_after, img1.agree_after) == (
        "cat",
        "cat",
        3,
        "dog",
        2,
    )
    assert img1.forgetting == pytest.approx(1 - 1 / 3)
    img5 = images.iloc[1]
    assert (img5.modal_before, img5.agree_before, img5.modal_after, img5.agree_after) == ("bird", 2, "cat", 2)
    # uncompressed population on the PIEs (images 1, 5): 3/3 and 2/3 right -> 5/6; rest all right
    assert row.uncompressed_top1_on_pies == pytest.approx(5 / 6) and row.uncompressed_top1_on_rest == 1.0
    assert row.top1_on_pies == pytest.approx(2 / 6)
    assert row.top1_delta_pp == pytest.approx(100 * ((4 + 4 + 6) / 18 - (6 + 5 + 6) / 18))
    assert set(per_class["class"]) == set(CLASSES) and per_class.n_seeds.eq(3).all()


def test_identical_populations_have_no_pies():
    summary, images, _ = pie.analyse(REF, [0, 1, 2], {("0", "fp32"): list(enumerate(REF))}, CLASSES)
    assert summary.pies.iloc[0] == 0 and images.empty
    assert summary.excess_pie_rate.iloc[0] == 0 and summary.excess_pies_minus_all_pp.isna().all()


def _models(rng, models, right_chance, y):
    """Answers of `models` independent models: right on image j with probability
    right_chance[j], else a random wrong label."""
    right = rng.random((models, len(y))) < right_chance
    return np.where(right, y, (y + rng.integers(1, 10, (models, len(y)))) % 10)


def test_seed_baseline_counts_only_what_compression_adds():
    """Five more seeds of the same model as the "compressed" population: many PIEs (single
    models of two seeds disagree often) but no excess over the seed-to-seed ones, however
    unequal the images; a population that also gets 6 % of the images wrong the same way
    forgets them beyond another seed; one seed has nothing to split."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 4000)
    chance = rng.beta(1.4, 0.6, len(y))  # unequal images
    ref, var = _models(rng, 3, chance, y), _models(rng, 3, chance, y)
    same = pie.seed_baseline(ref, [0, 1, 2], var, [0, 1, 2], y, 10, resamples=200)
    assert same["compression_split_pie_rate"] > 0.3 and same["half_models"] == 1
    assert same["excess_pie_ci_low"] < 0 < same["excess_pie_ci_high"] and abs(same["excess_pie_rate"]) < 0.01
    forgot = var.copy()
    gone = rng.choice(len(y), 240, replace=False)
    forgot[:, gone] = (y[gone] + 1) % 10
    lost = pie.seed_baseline(ref, [0, 1, 2], forgot, [0, 1, 2], y, 10, resamples=200)
    assert 0.02 < lost["excess_pie_ci_low"] < lost["excess_pie_rate"] < lost["excess_pie_ci_high"] < 0.06
    one = pie.seed_baseline(ref[:1], [0], var[:1], [0], y, 10)
    assert np.isnan(one["excess_pie_rate"]) and np.isnan(one["excess_pies_minus_all_pp"])


def test_the_images_compression_forgets_are_harder_only_when_they_are():
    """Claim 16's measure: a compressed copy that forgets images the models get right only
    sometimes (right chance 0.15-0.45) shows them harder than the test set; one that forgets
    images at random among equally hard ones does not (its interval holds 0)."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 6000)

    def gap(chance, gone):
        ref = _models(rng, 3, chance, y)
        var = ref.copy()
        var[:, gone] = (y[gone] + 1) % 10
        b = pie.seed_baseline(ref, [0, 1, 2], var, [0, 1, 2], y, 10, resamples=200)
        return (
            b["excess_pies_minus_all_pp"],
            b["excess_pies_minus_all_ci_low_pp"],
            b["excess_pies_minus_all_ci_high_pp"],
        )

    chance = rng.beta(1.4, 0.6, len(y))
    hard = rng.choice(np.flatnonzero((chance > 0.15) & (chance < 0.45)), 300, replace=False)
    assert gap(chance, hard)[2] < -10
    point, lo, hi = gap(np.full(len(y), 0.7), rng.choice(len(y), 300, replace=False))
    assert lo < 0 < hi


def test_predictions_on_another_test_set_are_refused():
    other = [preds([0, 0, 1, 1, 2, 2], sha="zzz")]
    with pytest.raises(pie.PopulationError, match="another test set"):
        pie.analyse(REF, [0, 1, 2], {("50", "int8"): list(enumerate(other))}, CLASSES)


def test_predictions_file_round_trip_and_damage(tmp_path):
    test_npz = tmp_path / "test.npz"
    np.savez(test_npz, x=np.zeros((3, 2, 2, 3), np.uint8), y=np.array([0, 1, 2]))
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]], np.float32)
    path = tmp_path / "p.predictions.npz"
    evaluate_accuracy.write_predictions(path, scores, np.array([0, 1, 2]), test_npz)
    p = read_predictions(path)
    assert p["label"].tolist() == [0, 2, 1] and p["confidence"] == pytest.approx([0.7, 0.6, 0.5])
    assert p["true"].tolist() == [0, 1, 2] and len(p["test_sha256"]) == 64
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="p.predictions.npz"):
        read_predictions(path)


def test_t_interval_and_welch_interval_against_hand_computation():
    lo, hi = stats.t_interval([1, 2, 3, 4, 5])  # mean 3, s/sqrt(n) = 0.70711, t(0.975, 4) = 2.776445
    assert (lo, hi) == pytest.approx((3 - 1.963243, 3 + 1.963243), abs=1e-5)
    assert stats.ci_halfwidth([1, 2, 3, 4, 5]) == pytest.approx(1.963243, abs=1e-5)
    assert np.isnan(stats.t_interval([1.0])[0]) and np.isnan(stats.t_interval([2, 2, 2])).all()
    assert stats.ci_halfwidth([2, 2, 2]) == 0.0  # a table's constant (a file size) is known exactly
    from scipy.stats import ttest_1samp  # scipy's own interval, another code path

    v = [0.61, 0.58, 0.66, 0.59, 0.63, 0.60]
    assert stats.t_interval(v) == pytest.approx(tuple(ttest_1samp(v, 0).confidence_interval(0.95)))
    # Welch: a = [1,2,3] (var 1), b = [2,4,6,8] (var 6.667); se = sqrt(1/3 + 6.667/4) = 1.41421;
    # Welch-Satterthwaite df = 2^2 / ((1/3)^2/2 + (1.6667)^2/3) = 4.0755; t(0.975, 4.0755) = 2.75628
    lo, hi = stats.welch_interval([1, 2, 3], [2, 4, 6, 8])
    assert (lo, hi) == pytest.approx((3 - 2.75628 * 1.41421, 3 + 2.75628 * 1.41421), abs=1e-3)


def test_clopper_pearson_in_closed_form_equals_scipys_root_search():
    """stats.proportion_interval (beta quantiles) against scipy's binomtest exact interval,
    with the ends k = 0 and k = n; the paired interval maps it onto a change of accuracy."""
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    cases = [(0, 5), (5, 5), (0, 1), (1, 1), (3, 10)]
    cases += [(int(k), int(n)) for n in rng.integers(1, 5000, 200) for k in rng.integers(0, n + 1, 1)]
    for k, n in cases:
        for confidence in (0.9, 0.95, 0.99):
            ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
            assert stats.proportion_interval(k, n, confidence) == pytest.approx((ci.low, ci.high), abs=1e-12)
    low, high = binomtest(30, 40).proportion_ci(method="exact")
    assert stats.paired_interval(30, 10, 1000) == pytest.approx(((2 * low - 1) * 0.04, (2 * high - 1) * 0.04))


def test_benjamini_hochberg_against_known_values():
    # sorted p 0.005, 0.01, 0.03, 0.04 (m = 4): p*m/rank = 0.02, 0.02, 0.04, 0.04, then the
    # running minimum from the top
    q = stats.bh_adjust([0.01, 0.04, float("nan"), 0.03, 0.005])
    assert q[[0, 1, 3, 4]] == pytest.approx([0.02, 0.04, 0.04, 0.02]) and np.isnan(q[2])


CLASSES20 = [f"c{i:02d}" for i in range(20)]


def _population_frame(class_acc: dict, seed=0, seeds=5, sd=0.02):
    """Per-class table of a population: class -> mean accuracy, seed noise of `sd` around it
    (1000 test images per class)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(seeds):
        for c, acc in class_acc.items():
            correct = int(round(1000 * (acc + rng.normal(0, sd))))
            rows.append({"seed": s, "class": c, "support": 1000, "correct": correct, "accuracy": correct / 1000})
    return pd.DataFrame(rows)


def test_class_changes_flag_the_class_hit_harder_than_the_model():
    base = _population_frame({c: 0.8 for c in CLASSES20}, seed=1)
    hit = _population_frame({**{c: 0.8 for c in CLASSES20[:-1]}, "c19": 0.5}, seed=2)
    d = stats.class_changes(base, hit).set_index("class")
    assert d.loc["c19", "significant"] and not d.drop("c19").significant.any()
    assert d.loc["c19", "delta_pp"] == pytest.approx(-30, abs=3)
    assert d.loc["c19", "delta_ci_low_pp"] < d.loc["c19", "delta_pp"] < d.loc["c19", "delta_ci_high_pp"]
    assert d.overall_delta_pp.iloc[0] == pytest.approx(-1.5, abs=0.5)
    # every class down by the same amount: none hit harder than the model
    even = stats.class_changes(base, _population_frame({c: 0.7 for c in CLASSES20}, seed=3))
    assert not even.significant.any() and (even.q_value >= even.p_value).all()


def _pie_tables(pie_rate=0.02, harder=True, quant_rate=0.005, significant=("j",), overall=-3.0, seeds=5):
    """pie.csv / pie_per_class.csv as the stage writes them, with the quantities the claims
    15-18 read set directly."""
    pie_rows = []
    for sp, q, delta, rate in (
        ("0", "fp32", 0.0, 0.0),
        ("50", "fp32", -1.0, pie_rate / 2),
        ("90", "fp32", overall, pie_rate),
        ("0", "int8", -1.0, quant_rate),
    ):
        pie_rows.append(
            dict(
                arch="mobilenet",
                sparsity=sp,
                quant=q,
                variant=f"s{sp} {q}",
                n_models=seeds,
                test_images=10000,
                pies=int(3 * rate * 10000),
                pie_rate=3 * rate,
                top1_delta_pp=delta,
                half_models=seeds // 2,
                compression_split_pie_rate=0.3 + rate,
                seed_split_pie_rate=0.3,
                excess_pie_rate=rate,
                excess_pie_ci_low=rate - 0.002,
                excess_pie_ci_high=rate + 0.002,
                excess_pies_minus_all_pp=-30 if harder else 10,
                excess_pies_minus_all_ci_low_pp=-35 if harder else 5,
                excess_pies_minus_all_ci_high_pp=-25 if harder else 15,
            )
        )
    per_class = pd.DataFrame(
        [
            dict(
                arch="mobilenet",
                variant="s90 fp32",
                overall_delta_pp=overall,
                excess_pp=-20 if c in significant else 1,
                significant=c in significant,
                **{"class": c},
            )  # fmt: skip
            for c in "abcdefghij"
        ]
    )
    return pd.DataFrame(pie_rows), per_class


@pytest.mark.parametrize(
    "no, broken",
    [
        (15, dict(pie_rate=0.2)),
        (16, dict(harder=False)),
        (17, dict(quant_rate=0.05)),
        (18, dict(significant=("a", "b", "c", "d"))),
        (18, dict(significant=())),
    ],
)
def test_forgetting_claims_hold_and_do_not_hold(no, broken):
    from test_report import ARCHS, fabricated

    s, b, pc = fabricated()
    f = findings.findings(s, b, pc, ARCHS, *_pie_tables()).set_index("no")
    assert f.loc[no, "verdict"] == "holds", f.loc[no].to_dict()
    f = findings.findings(s, b, pc, ARCHS, *_pie_tables(**broken)).set_index("no")
    assert f.loc[no, "verdict"] == "does not hold", f.loc[no].to_dict()


def test_forgetting_claims_need_a_population():
    from test_report import ARCHS, fabricated

    s, b, pc = fabricated()
    one, per_class = _pie_tables(seeds=1)
    f = findings.findings(s, b, pc, ARCHS, one, per_class).set_index("no")
    assert (f.loc[[15, 16, 17, 18], "verdict"] == "not measured").all()
    assert "at least 2 seeds (add seeds: `seeds: [0, 1, 2]`)" in f.loc[15, "measured"]
    two, per_class = _pie_tables(seeds=2)
    f = findings.findings(s, b, pc, ARCHS, two, per_class).set_index("no")
    assert f.loc[15, "verdict"] == "holds" and "at least 3 seeds" in f.loc[16, "measured"]
    # a variant that forgets nothing beyond another seed has no images to call harder
    none = _pie_tables(pie_rate=0.0)[0].assign(excess_pie_ci_low=-0.002)
    f = findings.findings(s, b, pc, ARCHS, none, per_class).set_index("no")
    assert f.loc[16, "verdict"] == "not measured" and "beyond what another seed changes" in f.loc[16, "measured"]


def test_gallery_tile_shows_the_test_image_upright_in_rgb(tmp_path):
    """Quadrants red / green / blue / white: read back from the rendered figure."""
    x = np.zeros((2, 32, 32, 3), np.uint8)
    x[1, :16, :16] = (255, 0, 0)
    x[1, :16, 16:] = (0, 255, 0)
    x[1, 16:, :16] = (0, 0, 255)
    x[1, 16:, 16:] = (255, 255, 255)
    tiles = pd.DataFrame(
        [
            dict(
                index=1,
                true_class="cat",
                modal_before="cat",
                agree_before=5,
                n_models_before=5,
                modal_after="dog",
                agree_after=4,
                n_models_after=5,
                variant="s90 int8",
            )
        ]  # fmt: skip
    )
    fig = report_gallery.gallery_figure(x, tiles, "test", cols=1)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    ax = fig.axes[0]
    box = ax.get_window_extent()
    height = pixels.shape[0]

    def at(fx, fy):  # fraction across, fraction down the tile
        col = int(box.x0 + fx * box.width)
        row = int(height - (box.y1 - fy * box.height))
        return tuple(int(v) for v in pixels[row, col])

    assert at(0.25, 0.25) == (255, 0, 0) and at(0.75, 0.25) == (0, 255, 0)
    assert at(0.25, 0.75) == (0, 0, 255) and at(0.75, 0.75) == (255, 255, 255)
    assert "cat (5/5) → dog (4/5)" in ax.get_title()


def test_most_forgotten_ranks_by_forgetting_and_shows_each_image_once():
    images = pd.DataFrame(
        {
            "index": [3, 3, 7, 9],
            "forgetting": [0.4, 1.0, 0.8, 0.8],
            "agree_after": [3, 5, 2, 4],
            "variant": ["s50 fp32", "s90 fp32", "s90 fp32", "s0 int8"],
        }
    )
    top = pie.most_forgotten(images, 2)
    assert top["index"].tolist() == [3, 9] and top.iloc[0].variant == "s90 fp32"
