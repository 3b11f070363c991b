"""Figures written into run directories (matplotlib, drawn without pyplot: no display needed)."""

from fgssl.plots.confusion import plot_confusion_matrices
from fgssl.plots.curves import plot_training_curves
from fgssl.plots.gradcam import gradcam_maps, plot_gradcam
from fgssl.plots.jigsaw import plot_jigsaw_schedule
from fgssl.plots.run import write_run_figures

__all__ = [
    "gradcam_maps",
    "plot_confusion_matrices",
    "plot_gradcam",
    "plot_jigsaw_schedule",
    "plot_training_curves",
    "write_run_figures",
]
