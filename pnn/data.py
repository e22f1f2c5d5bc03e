"""Data sets as spike times: Iris, digits, Fashion-MNIST, CIFAR-10.

Every loader returns spike times in [0, 1] (float32) and integer labels, split deterministically
from ``DataConfig.seed``:

- Images (digits, Fashion-MNIST, CIFAR-10): pixel x in [0, 1] -> spike at t = 1 - x (bright pixels
  fire early; method.md section 1). Shape (N, C, H, W).
- Iris (the circuit experiment's encoding): each feature min-max scaled to [0, 1] with a scaler
  fitted on the training split only (test values are clipped into [0, 1]), t = x, plus one bias
  input that always spikes at t = 0. Shape (N, 5).

Iris and digits ship with scikit-learn (no download). Fashion-MNIST is read from the idx(.gz) files
of the Debian package ``dataset-fashion-mnist``; CIFAR-10 from the standard python-pickle batches
(``data_batch_1`` .. ``data_batch_5``, ``test_batch``) in a folder the user gives.
"""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from imcpnn.config import require
from imcpnn.errors import ConfigError, ToolNotFoundError

#: Names accepted by :func:`load_dataset`.
DATASETS: tuple[str, ...] = ("iris", "digits", "fashion-mnist", "cifar10")
#: Where the Debian package ``dataset-fashion-mnist`` installs its files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data set, where it lives, how it is split and subsampled.

    Attributes:
        dataset: one of :data:`DATASETS`.
        data_dir: folder of the Fashion-MNIST idx files (default :data:`FASHION_MNIST_DIR`) or of
            the CIFAR-10 pickle batches (required for cifar10); unused for iris/digits.
        test_fraction: share of the samples held out for testing (iris, digits only; Fashion-MNIST
            and CIFAR-10 come with their own test split). 1/3 gives Iris' 50 test samples.
        train_subset: keep only this many (randomly chosen, seeded) training samples; None = all.
        test_subset: same for the test split.
        seed: seed of the split and of the subsets.
    """

    dataset: str = "iris"
    data_dir: str | None = None
    test_fraction: float = 1.0 / 3.0
    train_subset: int | None = None
    test_subset: int | None = None
    seed: int = 0

    def __post_init__(self):
        require(self, "dataset", self.dataset, self.dataset in DATASETS, "one of " + ", ".join(DATASETS))
        require(self, "test_fraction", self.test_fraction, 0.0 < self.test_fraction < 1.0,
                "a value in (0, 1), e.g. 0.33")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            require(self, name, value, value is None or value >= 1, "an integer >= 1 (or None for all)")
        if self.dataset == "cifar10" and self.data_dir is None:
            raise ConfigError(
                "DataConfig.data_dir is required for cifar10: give the folder holding "
                "data_batch_1..5 and test_batch (the 'python version' from "
                "https://www.cs.toronto.edu/~kriz/cifar.html), e.g. --data-dir ~/cifar-10-batches-py"
            )


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """Spike-time tensors of one data set.

    Attributes:
        x_train: (N_train, *input_shape) float32 spike times in [0, 1].
        y_train: (N_train,) int64 labels in [0, n_classes).
        x_test, y_test: the same for the test split.
        n_classes: number of classes.
        input_shape: per-sample shape, (n_features,) or (C, H, W).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    input_shape: tuple[int, ...]


def image_to_spike_times(pixels: np.ndarray) -> np.ndarray:
    """t = 1 - x for pixel intensities x in [0, 1] (bright pixels spike early)."""
    return (1.0 - pixels).astype(np.float32)


def iris_to_spike_times(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max scale features to [0, 1] (fitted on x_train only; test clipped), t = x, bias at t = 0.

    (N, F) -> (N, F + 1): column 0 is the bias input spiking at t = 0.
    """
    lo = x_train.min(axis=0)
    span = np.maximum(x_train.max(axis=0) - lo, np.finfo(np.float64).tiny)

    def encode(x):
        scaled = np.clip((x - lo) / span, 0.0, 1.0)
        return np.concatenate([np.zeros((len(x), 1)), scaled], axis=1).astype(np.float32)

    return encode(x_train), encode(x_test)


def _subset(x: np.ndarray, y: np.ndarray, size: int | None, rng: np.random.Generator):
    if size is None or size >= len(y):
        return x, y
    keep = np.sort(rng.permutation(len(y))[:size])
    return x[keep], y[keep]


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)


def _read_idx(path: Path) -> np.ndarray:
    """An idx file (optionally .gz): big-endian magic (0, 0, dtype 0x08, ndim), dims, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ToolNotFoundError(f"{path} is not a uint8 idx file (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise ToolNotFoundError(
        f"Fashion-MNIST file {stem}(.gz) not found in {folder}. Install the Debian package with "
        f"'sudo apt-get install dataset-fashion-mnist' (files go to {FASHION_MNIST_DIR}) or pass "
        "the folder holding the idx files with --data-dir"
    )


def _load_fashion_mnist(folder: Path):
    out = []
    for split in ("train", "test"):
        images, labels = (_read_idx(_find_idx(folder, stem)) for stem in _FASHION_FILES[split])
        out += [images[:, None, :, :] / 255.0, labels.astype(np.int64)]
    return out


def _read_cifar_batch(path: Path):
    if not path.is_file():
        raise ToolNotFoundError(
            f"CIFAR-10 batch {path.name} not found in {path.parent}. Download and unpack the "
            "'CIFAR-10 python version' (cifar-10-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar.html) and pass its cifar-10-batches-py folder "
            "with --data-dir"
        )
    with open(path, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data / 255.0, np.asarray(batch[b"labels"], dtype=np.int64)


def _load_cifar10(folder: Path):
    parts = [_read_cifar_batch(folder / name) for name in _CIFAR_TRAIN]
    x_test, y_test = _read_cifar_batch(folder / _CIFAR_TEST)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return x_train, y_train, x_test, y_test


def load_dataset(config: DataConfig) -> DataSplits:
    """Load, split, subsample and spike-encode the data set that ``config`` names.

    Raises:
        ToolNotFoundError: a Fashion-MNIST or CIFAR-10 file is missing (the message says where it
            looked and how to get it).
    """
    if config.dataset == "iris":
        from sklearn.datasets import load_iris

        raw = load_iris()
        x_tr, x_te, y_tr, y_te = _split(raw.data, raw.target, config.test_fraction, config.seed)
    elif config.dataset == "digits":
        from sklearn.datasets import load_digits

        raw = load_digits()
        images = raw.images[:, None, :, :] / 16.0
        x_tr, x_te, y_tr, y_te = _split(images, raw.target, config.test_fraction, config.seed)
    elif config.dataset == "fashion-mnist":
        x_tr, y_tr, x_te, y_te = _load_fashion_mnist(Path(config.data_dir or FASHION_MNIST_DIR))
    else:
        x_tr, y_tr, x_te, y_te = _load_cifar10(Path(config.data_dir))
    rng = np.random.default_rng(config.seed)
    x_tr, y_tr = _subset(x_tr, y_tr, config.train_subset, rng)
    x_te, y_te = _subset(x_te, y_te, config.test_subset, rng)
    if config.dataset == "iris":
        x_tr, x_te = iris_to_spike_times(x_tr, x_te)
    else:
        x_tr, x_te = image_to_spike_times(x_tr), image_to_spike_times(x_te)
    n_classes = 3 if config.dataset == "iris" else 10
    return DataSplits(
        x_train=torch.from_numpy(np.ascontiguousarray(x_tr)),
        y_train=torch.from_numpy(np.asarray(y_tr, dtype=np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te)),
        y_test=torch.from_numpy(np.asarray(y_te, dtype=np.int64)),
        n_classes=n_classes,
        input_shape=tuple(x_tr.shape[1:]),
    )
