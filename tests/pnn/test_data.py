"""Data loaders: encodings, deterministic splits, CIFAR-10 pickles, missing-file errors."""

import pickle

import numpy as np
import pytest

from imcpnn.errors import ConfigError, ToolNotFoundError
from imcpnn.pnn.data import DataConfig, iris_to_spike_times, load_dataset


def test_iris_encoding_bias_and_train_only_scaling():
    data = load_dataset(DataConfig("iris"))
    assert data.x_train.shape == (100, 5) and data.x_test.shape == (50, 5)
    assert data.input_shape == (5,) and data.n_classes == 3
    assert (data.x_train[:, 0] == 0).all() and (data.x_test[:, 0] == 0).all()  # bias spikes at 0
    # scaler fitted on the training split: each feature spans exactly [0, 1] there
    assert np.allclose(data.x_train[:, 1:].numpy().min(0), 0) and np.allclose(data.x_train[:, 1:].numpy().max(0), 1)
    assert data.x_test.min() >= 0 and data.x_test.max() <= 1


def test_iris_scaler_ignores_test_values():
    x_train = np.array([[0.0], [2.0]])
    x_test = np.array([[1.0], [4.0], [-2.0]])
    tr, te = iris_to_spike_times(x_train, x_test)
    assert tr.tolist() == [[0.0, 0.0], [0.0, 1.0]]
    assert te.tolist() == [[0.0, 0.5], [0.0, 1.0], [0.0, 0.0]]  # 1/2 scaled, the others clipped


def test_split_is_deterministic_and_seeded():
    a, b = load_dataset(DataConfig("digits", seed=3)), load_dataset(DataConfig("digits", seed=3))
    c = load_dataset(DataConfig("digits", seed=4))
    assert (a.x_train == b.x_train).all() and (a.y_test == b.y_test).all()
    assert not (a.y_train == c.y_train).all()


def test_digits_pixels_to_times_and_subsets():
    data = load_dataset(DataConfig("digits", train_subset=50, test_subset=20))
    assert data.x_train.shape == (50, 1, 8, 8) and data.x_test.shape == (20, 1, 8, 8)
    from sklearn.datasets import load_digits

    # t = 1 - x with x = pixel / 16: every time is one of the 17 levels k/16
    levels = data.x_train.numpy() * 16
    assert np.allclose(levels, np.round(levels), atol=1e-5)
    assert data.x_train.max() == 1.0  # black background (x = 0) never spikes early
    assert load_digits().data.shape[0] == 1797


def _write_cifar(folder, n_per_batch, rng):
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, size=n_per_batch).tolist(),
            b"batch_label": name.encode(),
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
        batches[name] = batch
    return batches


def test_cifar10_pickles(tmp_path):
    batches = _write_cifar(tmp_path / "cifar", 4, np.random.default_rng(0))
    data = load_dataset(DataConfig("cifar10", data_dir=str(tmp_path / "cifar")))
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    first = batches["data_batch_1"][b"data"][0]
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32 x 32
    assert np.isclose(data.x_train[0, 1, 0, 5].item(), 1 - first[1024 + 5] / 255, atol=1e-6)
    assert np.isclose(data.x_train[0, 2, 31, 31].item(), 1 - first[3071] / 255, atol=1e-6)
    assert data.y_train[5].item() == batches["data_batch_2"][b"labels"][1]


def test_cifar10_missing_batch(tmp_path):
    _write_cifar(tmp_path / "cifar", 2, np.random.default_rng(0))
    (tmp_path / "cifar" / "data_batch_3").unlink()
    with pytest.raises(ToolNotFoundError, match="data_batch_3 not found in .*cifar.*--data-dir"):
        load_dataset(DataConfig("cifar10", data_dir=str(tmp_path / "cifar")))


def test_cifar10_needs_dir():
    with pytest.raises(ConfigError, match="data_dir is required for cifar10"):
        DataConfig("cifar10")


def test_fashion_mnist_missing_dir(tmp_path):
    with pytest.raises(ToolNotFoundError, match=r"not found in .*nowhere.*apt-get install dataset-fashion-mnist"):
        load_dataset(DataConfig("fashion-mnist", data_dir=str(tmp_path / "nowhere")))


def test_fashion_mnist_bad_idx(tmp_path):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(ToolNotFoundError, match="not a uint8 idx file"):
        load_dataset(DataConfig("fashion-mnist", data_dir=str(tmp_path)))


def test_fashion_mnist_idx_files(tmp_path):
    import gzip
    import struct

    images = np.arange(2 * 28 * 28, dtype=np.uint64).reshape(2, 28, 28) % 256
    for split, n in (("train", 2), ("t10k", 2)):
        with gzip.open(tmp_path / f"{split}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">HBB3I", 0, 8, 3, n, 28, 28) + images.astype(np.uint8).tobytes())
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">HBBI", 0, 8, 1, n) + bytes([7, 3]))
    data = load_dataset(DataConfig("fashion-mnist", data_dir=str(tmp_path)))
    assert data.x_train.shape == (2, 1, 28, 28) and data.y_train.tolist() == [7, 3]
    assert np.isclose(data.x_train[1, 0, 0, 1].item(), 1 - ((784 + 1) % 256) / 255, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dataset": "mnist"}, "dataset='mnist' is invalid: allowed one of"),
        ({"test_fraction": 1.0}, r"test_fraction=1.0 is invalid: allowed a value in \(0, 1\)"),
        ({"train_subset": 0}, "train_subset=0 is invalid: allowed an integer >= 1"),
    ],
)
def test_data_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DataConfig(**kwargs)
