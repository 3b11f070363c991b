"""Hydra configs of fgssl-train, shipped inside the package."""

from fgssl.conf.resolvers import register_resolvers

register_resolvers()
