"""Plots and widgets: the codebook/UMAP explorer (`explorer`)."""
from course_lib.viz.explorer import CodebookExplorer, umap_embedding

__all__ = ["CodebookExplorer", "umap_embedding"]
