"""The one training loop: resume equality, the NaN guard, unused paths left untouched."""
from __future__ import annotations

import pytest
import torch

from nas.data import DataConfig, load_data, make_splits
from nas.errors import TrainingError
from search_spaces import Skeleton, get_space
from supernets import METHODS, TrainConfig, train
from supernets.loop import StepMethod

SKELETON = Skeleton(1, 10, 8, width=4, cells=1)


def _setup(seed=0):
    space = get_space("nb201", SKELETON)
    splits = make_splits(load_data(None), DataConfig(batch_size=128), seed)
    method = METHODS.get("spos")(space, seed=seed)
    torch.manual_seed(seed)
    return space, space.build_supernet(), method, splits


def test_resuming_from_a_checkpoint_ends_bit_identical():
    config = TrainConfig(epochs=3, seed=0)
    _, straight, method, splits = _setup()
    train(straight, method, splits.train, config)

    _, resumed, method, splits = _setup()
    saved = []
    train(resumed, method, splits.train, TrainConfig(epochs=3, seed=0),
          save_checkpoint=lambda state: saved.append(_copy(state)))
    _, fresh, method, splits = _setup()
    checkpoint_after_epoch_1 = saved[0]
    train(fresh, method, splits.train, config, resume_from=checkpoint_after_epoch_1)
    for (name, a), b in zip(straight.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def _copy(state):
    import copy
    return copy.deepcopy(state)


def test_nan_loss_stops_the_run_before_any_checkpoint_holds_its_weights():
    class Exploding(StepMethod):
        def backward_passes(self):
            return 0

        def train_step(self, model, images, labels, ids):
            return torch.tensor(float("nan") if self.steps == 2 else 1.0)

        def setup(self, *args):
            self.steps = -1

        def clip_gradients(self, parameters, max_norm):
            self.steps += 1

    _, net, _, splits = _setup()
    saved = []
    # The loss is read every few steps and before every checkpoint: the checkpoint due after
    # step 4 is refused, and the error names the interval that went wrong.
    with pytest.raises(TrainingError, match=r"loss became nan within global steps 0-3"):
        train(net, Exploding(), splits.train, TrainConfig(epochs=1, checkpoint_every_steps=4),
              save_checkpoint=saved.append)
    assert saved == []


def test_spos_leaves_unchosen_ops_untouched():
    space, net, method, splits = _setup()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images, labels, ids = next(splits.train.epoch(0))
    state = method.sampler.state_dict()
    (arch,) = method.sampler.ask(1)
    method.sampler.load_state_dict(state)  # the step will draw the same path
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    optimizer.zero_grad(set_to_none=True)
    method.train_step(net, images, labels, ids)
    optimizer.step()
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    for edge, op in enumerate(arch.values):
        for other in space.decisions[0].choices:
            if other != op and other != "none":
                prefix = f".edges.{edge}.{other}."
                assert not any(prefix in k for k in changed if "running" not in k), (edge, other)
    assert any(".edges." in k for k in changed)
