"""How fast a single-path DARTS supernet learns on the embedded digits, by skeleton depth.

Trains the supernet of `--cells` layers with uniformly sampled single paths (SPOS), or always
the same path (`--fixed`: the control, which learns like a stand-alone network), for `--steps`
SGD steps (lr cosine from --lr, momentum 0.9 Nesterov, weight decay 3e-4, gradient norm clipped
at 5, batch 64), then scores the fixed path and 10 uniformly drawn paths with recalibrated
BatchNorm on the search-validation split. A plain loop over the platform's own supernet,
sampler and data splits, so that one process shows the loss curve every 50 steps.

    OMP_NUM_THREADS=1 python results/main_job/skeleton_steps.py --cells 8 --steps 600
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from nas.config import DataConfig, SpaceConfig
from nas.problem import build_problem
from search_spaces.uniform import UniformSampler
from supernets.evaluation import accuracy, recalibrate_batchnorm

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cells", type=int, default=8)
parser.add_argument("--width", type=int, default=16)
parser.add_argument("--steps", type=int, default=600)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--fixed", action="store_true", help="train one path only (the control)")
args = parser.parse_args()

problem = build_problem(SpaceConfig("darts", args.width, args.cells), DataConfig(), 0, "cpu")
torch.manual_seed(0)
net = problem.space.build_supernet()
sampler = UniformSampler(problem.space, 0)
fixed = sampler.ask(1)[0]
optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=3e-4,
                            nesterov=True)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
step, start, losses = 0, time.time(), []
while step < args.steps:
    for images, labels, _ in problem.splits.train.epoch(step):
        arch = fixed if args.fixed else sampler.ask(1)[0]
        loss = F.cross_entropy(net(images, arch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            print(f"step {step} loss {np.mean(losses[-50:]):.3f} ({time.time() - start:.0f} s)",
                  flush=True)
        if step >= args.steps:
            break
scores = []
for arch in [fixed, *sampler.ask(10)]:
    recalibrate_batchnorm(net, lambda x: net(x, arch), problem.splits.calibration.epoch(0), 10)
    scores.append(accuracy(net, lambda x: net(x, arch), problem.splits.val.epoch(0)))
print(f"cells {args.cells} width {args.width} steps {args.steps} lr {args.lr} "
      f"{'fixed' if args.fixed else 'uniform'}: fixed path {scores[0]:.1f}%, 10 random paths "
      f"{np.round(scores[1:], 1).tolist()}, median {np.median(scores[1:]):.1f}%")
