"""Fashion-MNIST VGG-like CNN RC-Spike PNN benchmark (method.md section 3; paper ~94 %).

The paper's CNN, conv64-conv64-pool-conv128-conv128-pool-conv256-conv256-pool-fc512-fc10 with 3x3
convolutions (``arch="vgg7"``: each convolution is the dense RC-Spike layer on unfolded patches,
each pooling a min-pool of spike times), trained with the MLP benchmark's recipe and command line
(``fashion_mnist_mlp.py``: DSTD M = 10 with a random grid offset per layer and mini-batch, M = 30
in evaluation, E = (2.8, -1.53), spike-time noise 0.01, Adam lr 1e-4, batch 32). Its record is
``benchmarks/results/fashion_mnist_cnn_<--name>.json``, in the same format.

A convolution's DSTD drives hold (batch H W, M + 2, C k k) soft steps: about 0.7 GB for the second
layer at batch 32, and 15 GB per evaluation batch of 256 at M = 30, so this is a GPU benchmark;
``--time-budget-s`` stops it after the whole epochs that fit a device lease (rerun to continue).

    python benchmarks/fashion_mnist_cnn.py --epochs 50 --device cuda --out runs/fm_cnn --time-budget-s 3600
    python benchmarks/fashion_mnist_cnn.py --epochs 1 --subset 64 --test-subset 64 --out /tmp/fm_cnn  # CPU look
"""

from __future__ import annotations

import sys

import fashion_mnist_mlp


def main(argv=None) -> int:
    """``fashion_mnist_mlp.py``'s command line with the VGG-like CNN (``arch="vgg7"``)."""
    return fashion_mnist_mlp.main(argv, script_file=__file__, doc=__doc__, arch="vgg7")


if __name__ == "__main__":
    sys.exit(main())
