"""Forward hooks for the proxies that read a network's activations (naswot, meco, AZ-NAS)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from torch import nn

Hook = Callable[[nn.Module, tuple, object], None]


@contextmanager
def forward_hooks(pairs: Iterable[tuple[nn.Module, Hook]]) -> Iterator[None]:
    """Each module's hook registered for the block's forward passes, and removed after it
    whatever happens, so a proxy leaves the network as it found it."""
    handles = [module.register_forward_hook(hook) for module, hook in pairs]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
