"""Fashion-MNIST MLP 784-400-400-10 RC-Spike PNN benchmark (method.md section 3; paper ~90.5 %).

Trains with DSTD M = 10 (random grid offset per layer and mini-batch), evaluates at M = 30, finite
reversal potentials (default E_plus = 2.8, E_minus = -1.53), spike-time noise 0.01, Adam lr 1e-4,
batch 32, and prints test accuracy and seconds per epoch. The run is resumable (rerun the same
command) and ends with one summary line starting with ``SUMMARY``.

    python benchmarks/fashion_mnist_mlp.py --epochs 50 --device cuda --out runs/fmnist_mlp
    python benchmarks/fashion_mnist_mlp.py --epochs 1 --subset 10000 --out /tmp/fm   # quick CPU look
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from imcpnn.pnn import DataConfig, LayerPhysics, ModelConfig, OptimConfig, TrainConfig, train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=50, help="epochs (paper: 50)")
    parser.add_argument("--e-rev", default="2.8,-1.53", help="E_PLUS,E_MINUS (default 2.8,-1.53)")
    parser.add_argument("--subset", type=int, help="training samples (default all 60000)")
    parser.add_argument("--test-subset", type=int, help="test samples (default all 10000)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (paper: 1e-4)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--data-dir", help="Fashion-MNIST idx folder (default the Debian package's)")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument("--out", required=True, help="run directory (resumable)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    e_plus, e_minus = (float(v) for v in args.e_rev.split(","))
    config = TrainConfig(
        data=DataConfig("fashion-mnist", data_dir=args.data_dir, train_subset=args.subset,
                        test_subset=args.test_subset, seed=args.seed),
        model=ModelConfig(arch="mlp:400,400", physics=LayerPhysics(
            e_plus=e_plus, e_minus=e_minus, train_steps=10, test_steps=30, random_offset=True,
            noise_sigma=0.01)),
        optim=OptimConfig(lr=args.lr, batch_size=32, epochs=args.epochs),
        seed=args.seed,
        device=args.device,
    )  # fmt: skip
    result = train(config, args.out)
    seconds = [h["train_seconds"] for h in result.history]
    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    summary = {
        "test_accuracy": result.test_accuracy,
        "best_test_accuracy": max(h["test_accuracy"] for h in result.history),
        "epochs": len(result.history),
        "train_seconds_per_epoch": sum(seconds) / len(seconds),
        "device": f"{args.device} ({device}, {torch.get_num_threads()} threads)",
        "n_train": args.subset or 60000,
        "e_plus": e_plus,
        "e_minus": e_minus,
    }
    print("SUMMARY " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
