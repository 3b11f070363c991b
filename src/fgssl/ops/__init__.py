"""Tensor operations of the method."""

from fgssl.ops.jigsaw import jigsaw, random_permutations

__all__ = ["jigsaw", "random_permutations"]
