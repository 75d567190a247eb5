"""The `mobilenet` space: OFA's elastic MobileNetV3, weight-entangled by slicing."""
from search_spaces import SPACES
from search_spaces.mobilenet.space import MobileNetSpace

SPACES.register(MobileNetSpace)

__all__ = ["MobileNetSpace"]
