"""Hydra configs of fgssl-train, shipped inside the package."""
