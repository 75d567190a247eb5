"""What a training method costs beyond SPOS, measured in one run on this machine.

    python -m nas.benchmarks.method_overhead [--space nb201] [--images 2048] [--epochs 2]
        [--repeats 3] [--methods pada] [--sandwich-space mobilenet] [--sandwich-steps 10]

1. Epoch time of each method ÷ SPOS's: the real loop (`supernets.loop.train`) for `--epochs`
   epochs on the same images, the same skeleton and the same seed, method runs alternating with
   SPOS runs so drifts in machine load hit both; median over `--repeats`. PA&DA's extra work
   (per-sample logit-gradient norms, per-candidate gradient norms, the epoch-end updates and
   weighted data draws) is inside these epochs. Goal for PA&DA: <= 1.10. Its sampled paths
   differ from SPOS's uniform ones, so the mean MFLOPs of the paths each trained is reported
   too, and the time ratio per path MFLOP (the method's own overhead).
2. AlphaNet's sandwich step ÷ the sum of its subnets' standalone steps: one `train_step` of
   the method plus clipping and the SGD step, against training each of the step's subnets
   (recorded from the step itself: largest, random ones, smallest) as a standalone model with
   the loop's plain step, same batch. Goal <= 1.10.
Images are random CIFAR-shaped uint8 unless `--data` names a dataset; timing does not depend
on pixel values.
"""
from __future__ import annotations

import argparse
import functools
import platform
import statistics
import time

import pandas as pd
import torch

from nas.data import DataConfig, load_data, make_splits
from nas.data.datasets import ImageData
from nas.standalone import StandaloneStep
from search_spaces import Skeleton, get_space
from supernets import METHODS, TrainConfig, train

SKELETONS = {"nb201": Skeleton(3, 10, 32, width=16, cells=5),
             "darts": Skeleton(3, 10, 32, width=16, cells=8),
             "mobilenet": Skeleton(3, 10, 32, width=16, cells=5)}


def _random_images(count: int, size: int, seed: int) -> ImageData:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (count,), generator=generator)
    return ImageData("random", x, y, x[:64], y[:64], 10, True)


def _data(args: argparse.Namespace) -> ImageData:
    if args.data:
        return load_data(args.data)
    return _random_images(args.images, 32, args.seed)


def _method(name: str, space, seed: int):
    return METHODS.get(name)(space, seed=seed)


def epoch_ratio(space_name: str, data: ImageData, method_name: str, epochs: int, repeats: int,
                batch: int, seed: int) -> dict:
    space = get_space(space_name, Skeleton(data.in_channels, data.num_classes, data.image_size,
                                           SKELETONS[space_name].width, SKELETONS[space_name].cells))
    splits = make_splits(data, DataConfig(batch_size=batch, val_fraction=0.05), seed)
    times: dict[str, list[float]] = {"spos": [], method_name: []}
    flops: dict[str, list[float]] = {"spos": [], method_name: []}
    cost = functools.lru_cache(maxsize=None)(space.flops_m)
    for _ in range(repeats):
        for name in ("spos", method_name):
            method = _method(name, space, seed)
            torch.manual_seed(seed)
            net = method.build_supernet()
            used = _record_paths(net)
            start = time.perf_counter()
            train(net, method, splits.train, TrainConfig(epochs=epochs, checkpoint_every_steps=0),
                  description=f"{name}")
            times[name].append((time.perf_counter() - start) / epochs)
            flops[name].append(statistics.mean(cost(a) for a in used))
    base, other = statistics.median(times["spos"]), statistics.median(times[method_name])
    base_flops, other_flops = statistics.mean(flops["spos"]), statistics.mean(flops[method_name])
    # A method that samples costlier paths (PA&DA moves probability towards candidates with
    # large gradients, often convolutions) takes longer for that reason alone; the per-MFLOP
    # ratio separates that from the method's own bookkeeping.
    return {"measure": f"{method_name} epoch / spos epoch", "space": space_name,
            "method_s": other, "baseline_s": base, "ratio": other / base,
            "path_mflops_ratio": other_flops / base_flops,
            "ratio_per_path_mflop": (other / other_flops) / (base / base_flops),
            "steps_per_epoch": len(splits.train)}


def _record_paths(net) -> list:
    """Wrap `net.forward` to list the architectures it runs."""
    used: list = []
    forward = net.forward
    net.forward = lambda images, arch: (used.append(arch), forward(images, arch))[1]
    return used


def _loop_step(method, net, parameters, optimizer, x, y, max_norm: float) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    method.train_step(net, x, y, torch.arange(len(y)))
    method.clip_gradients(parameters, max_norm)
    optimizer.step()
    return time.perf_counter() - start


def sandwich_ratio(space_name: str, steps: int, batch: int, seed: int) -> dict:
    space = get_space(space_name, SKELETONS[space_name])
    method = _method("alphanet", space, seed)
    torch.manual_seed(seed)
    supernet = method.build_supernet()
    parameters = list(supernet.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.01, momentum=0.9)
    x = torch.randn(batch, *space.input_shape())
    y = torch.randint(0, space.skeleton.num_classes, (batch,))
    used = _record_paths(supernet)
    sandwich, separate = [], []
    for i in range(steps + 2):  # 2 warm-up steps
        used.clear()
        elapsed = _loop_step(method, supernet, parameters, optimizer, x, y, 5.0)
        total = 0.0
        for arch in list(used):
            model = space.build_model(arch)
            model.load_state_dict(supernet.subnet_state_dict(arch, model))
            model.train()
            plain = StandaloneStep()
            model_parameters = list(model.parameters())
            model_optimizer = torch.optim.SGD(model_parameters, lr=0.01, momentum=0.9)
            _loop_step(plain, model, model_parameters, model_optimizer, x, y, 5.0)  # warm-up
            total += _loop_step(plain, model, model_parameters, model_optimizer, x, y, 5.0)
        if i >= 2:
            sandwich.append(elapsed)
            separate.append(total)
    paths = len(used)
    return {"measure": f"alphanet sandwich step / sum of its {paths} subnets' steps",
            "space": space_name, "method_s": statistics.median(sandwich),
            "baseline_s": statistics.median(separate),
            "ratio": statistics.median(sandwich) / statistics.median(separate),
            "steps_per_epoch": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--methods", nargs="+", default=["pada"])
    parser.add_argument("--data", default=None)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sandwich-space", default="mobilenet")
    parser.add_argument("--sandwich-steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", default=None, help="also write the rows here")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    data = _data(args)
    rows = [epoch_ratio(args.space, data, name, args.epochs, args.repeats, args.batch, args.seed)
            for name in args.methods]
    if args.sandwich_steps > 0:
        rows.append(sandwich_ratio(args.sandwich_space, args.sandwich_steps, args.batch, args.seed))
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
