"""Few-Shot NAS and GM-NAS: splits cover the space exactly once, gradient matching groups
candidates that agree, weights and momentum transfer, and a split supernet routes architectures."""
from __future__ import annotations

import copy
import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from nas.data import DataConfig, load_data, make_splits
from nas.errors import ArchitectureError, CheckpointError, ConfigError
from search_spaces import Skeleton, get_space
from search_spaces.base import Decision, SearchSpace, Supernet
from supernets import METHODS, TrainConfig, train
from supernets.methods.gmnas import GMNAS, GMNASConfig, best_bipartition, cosine_distances
from supernets.partitioned import PartitionedSupernet

SKELETON = Skeleton(1, 10, 8, width=4, cells=1)


@pytest.fixture(scope="module")
def splits():
    return make_splits(load_data(None), DataConfig(batch_size=64), 0)


def _method(name, space, **options):
    cls = METHODS.get(name)
    return cls(space, cls.config_class(**options), seed=0)


def _owners(net: PartitionedSupernet, space) -> Counter:
    return Counter(net.owner(arch) for arch in space.enumerate())


def test_fewshot_split_of_a_k_way_decision_gives_k_sub_supernets_covering_the_space_once(splits):
    space = get_space("nb201", SKELETON)
    method = _method("fewshot", space, split_at=0.0)
    net = method.build_supernet()
    train(net, method, splits.train, TrainConfig(epochs=1, checkpoint_every_steps=0))
    assert len(net.regions) == 5 and len({r.part for r in net.regions}) == 5
    owners = _owners(net, space)  # every one of the 15,625 architectures has exactly one owner
    assert sum(owners.values()) == space.size() and sorted(owners.values()) == [3125] * 5
    for arch in itertools.islice(space.enumerate(), 0, 15625, 997):
        region = net.regions[net.owner(arch)]
        assert region.allowed == {0: (space.decisions[0].index(arch.values[0]),)}


def test_fewshot_default_split_follows_the_official_budget_ratio():
    space = get_space("nb201", SKELETON)
    assert METHODS.get("fewshot")(space).split_fractions() == [2 / 7]
    with pytest.raises(ConfigError, match="no decision 'nope'"):
        _method("fewshot", space, decision="nope")


def test_children_start_from_the_parents_weights_and_momentum(splits):
    space = get_space("nb201", SKELETON)
    method = _method("fewshot", space, split_at=0.5)
    net = method.build_supernet()
    seen = {}

    original = method.on_epoch_start

    def spy(epoch, epochs):
        if epoch == 1:
            seen["before"] = copy.deepcopy(net.parts[0].state_dict())
            seen["momentum"] = [method.optimizer.state[p]["momentum_buffer"].clone()
                                for p in net.parts[0].parameters() if p in method.optimizer.state]
        original(epoch, epochs)
        if epoch == 1:
            seen["children"] = [copy.deepcopy(net.parts[r.part].state_dict()) for r in net.regions]
            seen["child_momentum"] = [
                [method.optimizer.state[p]["momentum_buffer"].clone()
                 for p in net.parts[r.part].parameters() if p in method.optimizer.state]
                for r in net.regions]

    method.on_epoch_start = spy
    train(net, method, splits.train, TrainConfig(epochs=2, checkpoint_every_steps=0))
    for child, momentum in zip(seen["children"], seen["child_momentum"]):
        assert all(torch.equal(child[k], v) for k, v in seen["before"].items())
        assert len(momentum) == len(seen["momentum"]) > 0
        assert all(torch.equal(a, b) for a, b in zip(momentum, seen["momentum"]))


def test_cosine_distances_match_the_closed_form():
    rng = np.random.default_rng(0)
    vectors = [torch.tensor(rng.normal(size=7)) for _ in range(4)]
    distances = cosine_distances(vectors)
    for i, j in itertools.product(range(4), repeat=2):
        a, b = vectors[i].numpy(), vectors[j].numpy()
        expected = 0.0 if i == j else 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-6)
        assert distances[i, j] == pytest.approx(expected, abs=1e-9)


def test_best_bipartition_groups_candidates_pointing_the_same_way():
    rng = np.random.default_rng(1)
    up, right = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    # Candidates 1 and 3 push the shared weights "up", 0, 2 and 4 push them "right".
    directions = [right, up, right, up, right]
    vectors = [torch.tensor(d * 5 + rng.normal(scale=0.3, size=4)) for d in directions]
    groups, within, cut = best_bipartition(cosine_distances(vectors))
    assert sorted(map(sorted, groups)) == [[0, 2, 4], [1, 3]]
    d = cosine_distances(vectors)
    assert within == pytest.approx(d[1, 3] + d[0, 2] + d[0, 4] + d[2, 4])
    assert cut == pytest.approx(sum(d[i, j] for i in (1, 3) for j in (0, 2, 4)))


def test_best_bipartition_is_the_brute_force_minimum():
    rng = np.random.default_rng(2)
    for k in (2, 3, 5, 7):
        m = rng.random((k, k))
        d = (m + m.T) / 2
        np.fill_diagonal(d, 0)
        groups, within, _ = best_bipartition(d)
        low = 2 if k >= 4 else 1
        costs = [sum(d[i, j] for g in (s, [x for x in range(k) if x not in s])
                     for i, j in itertools.combinations(g, 2))
                 for n in range(low, k // 2 + 1) for s in itertools.combinations(range(k), n)]
        assert within == pytest.approx(min(costs))
        assert sorted(i for g in groups for i in g) == list(range(k))


class _SignSpace(SearchSpace):
    """A toy space where the answer is known: candidates a, b feed +x to a shared linear layer,
    candidates c, d feed -x, so a/b (and c/d) ask the same of the shared weights."""

    name = "signs"
    default_width = 1
    default_cells = 1
    SIGNS = {"a": 1.0, "b": 1.0, "c": -1.0, "d": -1.0}

    def _build_decisions(self):
        return [Decision("sign", tuple(self.SIGNS)), Decision("gain", (1, 2))]

    def format(self, values):
        return ",".join(map(str, values))

    def parse(self, text):
        sign, gain = text.split(",")
        return self.architecture([sign, int(gain)])

    def build_supernet(self):
        return _SignSupernet(self)

    def build_model(self, arch):
        raise NotImplementedError


class _SignSupernet(Supernet):
    def __init__(self, space):
        super().__init__(space)
        self.shared = nn.Linear(64, 10)

    def forward(self, x, arch):
        return self.shared(x.flatten(1) * self.space.SIGNS[arch["sign"]] * arch["gain"])


def test_gradient_matching_groups_candidates_that_agree_on_the_shared_weights(splits):
    space = _SignSpace()
    method = GMNAS(space, GMNASConfig(split_at="0.0", score_batches=3), seed=0)
    net = method.build_supernet()
    method.setup(net, torch.optim.SGD(net.parameters(), lr=0.1), splits.train)
    distances = method.gradient_distances(net, net.regions[0], 0, level=0, region_index=0)
    # float32 gradients: equal directions give a cosine within rounding of 1
    assert distances[0, 1] == pytest.approx(0, abs=1e-5) and distances[2, 3] == pytest.approx(0, abs=1e-5)
    assert distances[0, 2] > 0.01
    decision, groups = method.plan_split(net, 0, level=0)
    assert decision == 0 and sorted(map(sorted, groups)) == [[0, 1], [2, 3]]


def test_gmnas_two_rounds_give_four_sub_supernets_covering_the_space_once(splits):
    space = get_space("nb201", SKELETON)
    method = _method("gmnas", space, split_at="0.0,0.5", score_batches=1)
    net = method.build_supernet()
    train(net, method, splits.train, TrainConfig(epochs=2, checkpoint_every_steps=0))
    assert len(net.regions) == 4 and net.levels_done == 2
    owners = _owners(net, space)
    assert sum(owners.values()) == space.size() == sum(r.size(space) for r in net.regions)
    assert all(len(r.allowed) == 2 for r in net.regions)  # binary splits, two rounds


@pytest.mark.parametrize("name, options", [("fewshot", {"split_at": 0.5}),
                                           ("gmnas", {"split_at": "0.25,0.5", "score_batches": 1})])
def test_split_training_resumes_bit_identically_across_the_split(name, options, splits):
    config = TrainConfig(epochs=3, checkpoint_every_steps=7)
    space = get_space("nb201", SKELETON)

    def fresh():
        torch.manual_seed(0)
        method = _method(name, space, **options)
        return method.build_supernet(), method

    straight, method = fresh()
    saved = []
    train(straight, method, splits.train, config, save_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    for state in (saved[1], saved[len(saved) // 2], saved[-2]):
        again, method = fresh()
        train(again, method, splits.train, config, resume_from=state)
        assert again.regions and [r.to_state() for r in again.regions] == \
            [r.to_state() for r in straight.regions]
        for (key, a), b in zip(straight.state_dict().items(), again.state_dict().values()):
            if torch.is_tensor(a):
                assert torch.equal(a, b), (key, state["epoch"], state["step"])


def test_a_split_supernet_routes_and_exports_each_architecture_from_its_owner(splits):
    space = get_space("nb201", SKELETON)
    method = _method("fewshot", space, split_at=0.0)
    net = method.build_supernet()
    train(net, method, splits.train, TrainConfig(epochs=1, checkpoint_every_steps=0))
    net.eval()
    x = next(iter(splits.val.epoch(0)))[0][:8]
    rng = np.random.default_rng(0)
    for _ in range(5):
        arch = space.sample(rng)
        part = net.parts[net.regions[net.owner(arch)].part]
        model = space.build_model(arch)
        model.load_state_dict(net.subnet_state_dict(arch, model))
        model.eval()
        assert torch.equal(net(x, arch), part(x, arch))
        assert (model(x) - net(x, arch)).abs().max() < 1e-5
    others = [p for p in net.parts if p is not net.parts[net.regions[net.owner(arch)].part]]
    assert any(not torch.equal(net(x, arch), p(x, arch)) for p in others)  # routing matters


def test_a_corrupt_region_table_is_refused():
    space = get_space("nb201", SKELETON)
    net = _method("gmnas", space).build_supernet()
    state = net.state_dict()
    state["_extra_state"] = {"regions": [[9, []]], "levels_done": 1}
    with pytest.raises(CheckpointError, match="beyond capacity"):
        net.load_state_dict(state)
    net.regions[0].allowed = {0: (1,)}
    with pytest.raises(ArchitectureError, match="no sub-supernet owns"):
        net.owner(space.from_indices([0] * 6))


def test_splits_use_only_decisions_every_architecture_uses(splits):
    space = get_space("mobilenet", Skeleton(1, 10, 8, width=4, cells=2))
    inactive = [d.name for i, d in enumerate(space.decisions) if not space.is_always_active(i)]
    assert "stage1.block4.kernel" in inactive and "stage1.block1.kernel" not in inactive
    with pytest.raises(ConfigError, match="some architectures ignore it"):
        _method("fewshot", space, decision="stage1.block4.kernel")
    method = _method("gmnas", space, split_at="0.0", score_batches=1)
    assert all(space.is_always_active(i) for i in method.candidates)
    net = method.build_supernet()
    train(net, method, splits.train, TrainConfig(epochs=1, checkpoint_every_steps=0))
    rng = np.random.default_rng(0)
    for index, region in enumerate(net.regions):  # what a region samples, it owns
        assert all(net.owner(region.sample(space, rng)) == index for _ in range(50))
