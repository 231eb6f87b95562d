"""The pieces the real-data examples add (fast; no real data needed).

`examples/vae_clustering.py` (deskewing, neighbour batches, the choice of
restart, the baselines per data set), `examples/gan_real_images.py` (its
scores) and the `--dataset` options of `vae.py` and `aae.py`. The quick
runs of the scripts themselves are in `tests/test_scripts.py`; one quick
run of `vae_clustering.py` on the Fashion-MNIST fixture is here (slow).
"""

import argparse
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent
FIXTURE = HERE / "fixtures" / "fashion_mnist"
EXAMPLES_DIR = HERE.parent.parent / "examples"


@pytest.fixture
def example(monkeypatch):
    """Imports `examples/<name>.py` as a module."""
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))

    def load(name):
        spec = importlib.util.spec_from_file_location(
            f"example_{name}", EXAMPLES_DIR / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, f"example_{name}", module)
        spec.loader.exec_module(module)
        return module

    return load


def test_deskew_makes_a_slanted_stroke_upright(example):
    vc = example("vae_clustering")
    image = np.zeros((28, 28), "float32")
    for row in range(4, 24):  # a stroke leaning right by 1/2 per row
        image[row, 8 + (23 - row) // 2 : 10 + (23 - row) // 2] = 1.0
    upright = vc.deskew(image[None])[0]
    columns = [np.average(np.arange(28), weights=r) for r in upright[6:22]]
    slanted = [np.average(np.arange(28), weights=r) for r in image[6:22]]
    assert np.ptp(slanted) > 6  # it leaned by 7-8 pixels
    assert np.ptp(columns) < 1.5  # now nearly vertical


def test_neighbour_spaces(example):
    vc = example("vae_clustering")
    rng = np.random.default_rng(0)
    x = rng.random((30, 28, 28, 1)).astype("float32")
    pixels = vc.neighbour_features(x, "pixels")
    np.testing.assert_allclose(pixels, x.reshape(30, -1))
    cosine = vc.neighbour_features(x, "cosine")
    np.testing.assert_allclose(np.linalg.norm(cosine, axis=1), 1.0, rtol=1e-5)
    nearest = vc.nearest_neighbours(x, 3, "cosine")
    assert nearest.shape == (30, 3)
    assert not (nearest == np.arange(30)[:, None]).any()  # never itself


def test_pair_batches_cover_every_pair_once_per_epoch(example):
    vc = example("vae_clustering")
    x = np.arange(12, dtype="float32").reshape(12, 1, 1, 1)
    nearest = (np.arange(12)[:, None] + np.array([1, 2])) % 12
    batches = vc.PairBatches(x, nearest, batch_size=5, seed=0)
    assert len(batches) == 5  # 24 pairs
    for _ in range(2):
        seen = []
        for i in range(len(batches)):
            (first, second), target = batches[i]
            np.testing.assert_array_equal(first, target)
            seen += list(zip(first.ravel(), second.ravel()))
        expected = {(a, (a + d) % 12) for a in range(12) for d in (1, 2)}
        assert sorted(seen) == sorted(expected)
        batches.on_epoch_end()
    fixed = vc.PairBatches(x, nearest, batch_size=4, seed=0, limit=8)
    first_pass = [fixed[i][0][0].ravel().tolist() for i in range(len(fixed))]
    fixed.on_epoch_end()
    assert [fixed[i][0][0].ravel().tolist() for i in range(2)] == first_pass


def test_pair_batches_augment_only_the_neighbours(example):
    vc = example("vae_clustering")
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 0.9, (20, 4, 4, 1)).astype("float32")
    nearest = (np.arange(20)[:, None] + np.array([1, 2])) % 20
    batches = vc.PairBatches(x, nearest, batch_size=40, seed=0, augment=0.5)
    (first, second), target = batches[0]
    np.testing.assert_array_equal(first, target)
    (plain_first, plain_second), _ = vc.PairBatches(
        x, nearest, batch_size=40, seed=0
    )[0]
    np.testing.assert_array_equal(first, plain_first)  # the same pairs
    mirrored = []
    for got, source in zip(second, plain_second):
        # got = source ** g or mirror(source) ** g, one g per image
        ratios = [np.log(got) / np.log(s) for s in (source, source[:, ::-1])]
        flat = [np.ptp(r) < 1e-4 for r in ratios]
        assert any(flat)
        mirrored.append(not flat[0])
        power = ratios[0 if flat[0] else 1].mean()
        assert np.exp(-0.5) - 1e-4 <= power <= np.exp(0.5) + 1e-4
    assert 0 < sum(mirrored) < len(mirrored)
    again = vc.PairBatches(x, nearest, batch_size=40, seed=0, augment=0.5)
    np.testing.assert_array_equal(again[0][0][1], second)  # seeded
    fixed = vc.PairBatches(x, nearest, 40, seed=0, limit=40, augment=0.5)
    (_, fixed_second), _ = fixed[0]
    np.testing.assert_array_equal(fixed_second, x[nearest.reshape(-1)])


def test_pair_batches_stretch_the_neighbours_vertically(example):
    vc = example("vae_clustering")
    height = 9
    rows = np.arange(height, dtype="float32")
    # channel 0 holds the row index, channel 1 ones: inside the image, a
    # stretched image shows in channel 0 where each row was taken from
    x = np.stack(
        [np.broadcast_to(rows[:, None], (height, 3)), np.ones((height, 3))],
        axis=-1,
    )
    x = np.repeat(x[None], 20, axis=0).astype("float32")
    nearest = (np.arange(20)[:, None] + np.array([1, 2])) % 20
    batches = vc.PairBatches(x, nearest, batch_size=40, seed=0, stretch=0.3)
    (first, second), target = batches[0]
    assert first.shape == (40, height, 3, 2)
    np.testing.assert_array_equal(first, np.broadcast_to(x[0], first.shape))
    np.testing.assert_array_equal(target, first)
    slopes = []
    centre = (height - 1) / 2
    for image in second:
        inside = np.isclose(image[:, 0, 1], 1.0)
        assert inside[int(centre)] and (image[~inside, :, 1] < 1).all()
        source = image[inside, 0, 0]
        slope, intercept = np.polyfit(rows[inside], source, 1)
        fitted = slope * rows[inside] + intercept
        np.testing.assert_allclose(source, fitted, atol=1e-5)
        np.testing.assert_allclose(intercept, centre * (1 - slope), atol=1e-4)
        np.testing.assert_allclose(image[:, 0], image[:, 2])  # per row
        slopes.append(slope)
    assert np.exp(-0.3) - 1e-4 <= min(slopes) < 1 < max(slopes)
    assert max(slopes) <= np.exp(0.3) + 1e-4
    again = vc.PairBatches(x, nearest, batch_size=40, seed=0, stretch=0.3)
    np.testing.assert_array_equal(again[0][0][1], second)  # seeded
    fixed = vc.PairBatches(x, nearest, 40, seed=0, limit=40, stretch=0.3)
    np.testing.assert_array_equal(fixed[0][0][1], x[nearest.reshape(-1)])


def test_agreement_picks_the_consensus_restart(example):
    vc = example("vae_clustering")
    base = np.repeat(np.arange(4), 10)
    merged = np.where(base == 3, 2, base)  # two clusters merged
    relabelled = (base + 1) % 4  # the same partition, other names
    candidates = [
        (10.0, base, "a"),
        (9.0, merged, "merged"),  # the lowest loss
        (10.5, relabelled, "b"),
        (10.2, base, "c"),
    ]
    assert vc.select_restart(candidates, "loss") == 1
    assert candidates[vc.select_restart(candidates, "agreement")][2] != (
        "merged"
    )


def test_neighbours_picks_the_restart_that_keeps_pairs_together(example):
    vc = example("vae_clustering")
    base = np.repeat(np.arange(4), 10)
    # each point's 2 neighbours: the next two points of its group of 10
    nearest = (np.arange(40)[:, None] + np.array([1, 2])) % 10
    nearest += 10 * base[:, None]
    halves = np.tile(np.repeat([0, 1], 5), 4) + 2 * (base % 2)  # cuts groups
    candidates = [(9.0, halves, "cut"), (10.0, (base + 1) % 4, "kept")]
    assert vc.select_restart(candidates, "loss") == 0
    assert vc.select_restart(candidates, "neighbours", nearest) == 1


def test_baselines_per_dataset(example):
    vc = example("vae_clustering")
    rng = np.random.default_rng(0)
    x = rng.random((60, 5, 5, 1))
    digits = vc.classical_clusterings(x, 3, use_umap=False)
    assert set(digits) == {"kmeans", "ward", "spectral", "pca20_gmm"}
    x = rng.random((60, 5, 5, 1))
    other = vc.classical_clusterings(
        x, 3, use_umap=False, dataset="fashion_mnist"
    )
    assert set(other) == {"kmeans", "pca20_gmm"}
    ids, seconds = other["kmeans"]
    assert ids.shape == (60,) and seconds >= 0


def test_defaults_follow_the_dataset(example):
    vc = example("vae_clustering")
    digits = vc.parse_args([])
    fashion = vc.parse_args(["--dataset", "fashion_mnist"])
    assert (digits.epochs, digits.select) == (100, "loss")
    assert digits.neighbour_space == "pixels"
    assert fashion.epochs == vc.DEFAULTS["fashion_mnist"]["epochs"]
    assert (fashion.select, fashion.marginal_weight) == ("neighbours", 300.0)
    assert (digits.neighbour_augment, fashion.neighbour_augment) == (0.0, 0.5)
    assert (digits.neighbour_stretch, fashion.neighbour_stretch) == (0.0, 0.2)
    assert (digits.neighbours, fashion.neighbours) == (10, 2)
    custom = vc.parse_args(["--dataset", "fashion_mnist", "--neighbours", "5"])
    assert custom.neighbours == 5
    mnist = vc.parse_args(["--dataset", "mnist"])  # no mirrored digits
    assert (mnist.marginal_weight, mnist.neighbour_augment) == (300.0, 0.0)
    assert (mnist.neighbour_stretch, mnist.select) == (0.0, "loss")
    mnist5k = vc.parse_args(["--dataset", "mnist5k"])
    assert (mnist5k.select, mnist5k.marginal_weight) == ("agreement", 50.0)
    assert digits.marginal_weight == 50.0
    explicit = vc.parse_args(
        ["--dataset", "fashion_mnist", "--epochs", "7"]
        + ["--marginal-weight", "9"]
    )
    assert (explicit.epochs, explicit.marginal_weight) == (7, 9.0)
    for name in ("vae", "aae"):
        args = example(name).parse_args(
            ["--dataset", "fashion_mnist", "--data-dir", "somewhere"]
        )
        assert args.dataset == "fashion_mnist"
        assert args.data_dir == "somewhere" and args.epochs == 10


def test_class_scores_and_frechet_distance(example):
    gan = example("gan_real_images")
    covered, kl = gan.class_scores(np.arange(1000) % 10)
    assert covered == 10 and kl == pytest.approx(0.0, abs=1e-12)
    covered, kl = gan.class_scores(np.zeros(100, "int64"))
    assert covered == 1 and kl == pytest.approx(np.log(10))
    # 995 of class 0, 5 of class 1: class 1 under 1 % is not covered
    covered, _ = gan.class_scores(np.r_[np.zeros(995), np.ones(5)].astype(int))
    assert covered == 1
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    mean, cov = gan.gaussian(a)
    assert gan.frechet_distance(mean, cov, mean, cov) == pytest.approx(
        0.0, abs=1e-8
    )
    shifted = gan.frechet_distance(mean, cov, mean + 2.0, cov)
    assert shifted == pytest.approx(12.0)  # 3 dimensions * 2^2
    # N(0, I) against N(0, 4 I): tr(I + 4I - 2 * 2I) = 3
    eye = np.eye(3)
    assert gan.frechet_distance(
        np.zeros(3), eye, np.zeros(3), 4 * eye
    ) == pytest.approx(3.0)


def test_gan_quick_falls_back_to_the_fixture(example, tmp_path):
    gan = example("gan_real_images")
    args = argparse.Namespace(data_dir=str(tmp_path), quick=True)
    x_train, y_train, x_test, y_test = gan.load_fashion_mnist(args)
    assert x_train.shape == (40, 28, 28, 1) and len(x_test) == 20
    args.quick = False
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        gan.load_fashion_mnist(args)


def test_gan_combine_reads_per_seed_histories(example, tmp_path, capsys):
    gan = example("gan_real_images")
    for seed, fd in ((0, 40.0), (1, 60.0)):
        for arm in ("plain", "vgan"):
            history = [
                dict(epoch=0, classes=1, kl=2.3, fd=200.0),
                dict(epoch=2, classes=9, kl=0.3, fd=fd + 10.0),
                dict(epoch=4, classes=10, kl=0.1, fd=fd),
            ]
            row = dict(arm=arm, seed=seed, seconds=5.0, **gan.summary(history))
            gan.save_history(row, history, str(tmp_path / f"seed{seed}"))
    gan.main(
        [
            "--combine",
            str(tmp_path / "seed0"),
            str(tmp_path / "seed1"),
            "--output-dir",
            str(tmp_path / "all"),
        ]
    )
    out = capsys.readouterr().out
    assert (
        "| plain | 1 | 10.000 | 0.100 | 60.000 | 9.000 | 0.300 | 70.000" in out
    )
    # medians over the two seeds: end FD (40 + 60) / 2, worst FD 60
    assert "plain_fd=50.0000" in out and "vgan_worst_fd=60.0000" in out
    assert out.rstrip().endswith("seeds=2 epochs=4 quick=0")
    assert (tmp_path / "all" / "curves.png").exists()
    with pytest.raises(FileNotFoundError, match="history_"):
        gan.main(["--combine", str(tmp_path / "all")])


@pytest.mark.slow
def test_vae_clustering_quick_on_the_fashion_fixture(example, tmp_path, capsys):
    vc = example("vae_clustering")
    vc.main(
        [
            "--quick",
            "--dataset",
            "fashion_mnist",
            "--data-dir",
            str(FIXTURE),
            "--output-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert "data: fashion_mnist, 60 images of (28, 28, 1)" in out
    assert "RESULT acc=" in out and out.rstrip().endswith("quick=1")
    assert (tmp_path / "quick" / "fashion_mnist_clusters.png").exists()
