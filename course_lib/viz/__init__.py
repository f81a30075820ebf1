"""Plots and widgets: the codebook/UMAP explorer (`explorer`), the beam-search explorer
(`generation`), and how both reach the screen (`display`)."""
from course_lib.viz.explorer import CodebookExplorer, umap_embedding
from course_lib.viz.generation import BeamExplorer

__all__ = ["BeamExplorer", "CodebookExplorer", "umap_embedding"]
