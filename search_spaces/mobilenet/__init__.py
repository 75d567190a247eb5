"""The `mobilenet` space: OFA's elastic MobileNetV3, weight-entangled by slicing."""
from search_spaces.mobilenet.space import MobileNetSpace

__all__ = ["MobileNetSpace"]
