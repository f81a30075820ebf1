"""Quantizers, one idea per module:

* `vq`: one vector quantizer with the straight-through estimator, codebook and commitment
  losses, EMA updates, k-means init and dead-code reset (lessons 03-04);
* `residual`: residual quantization over L levels built from `vq` (lesson 05);
* `kmeans`: training-free IDs: RQ-KMeans, balanced RQ-KMeans, hierarchical k-means on
  collaborative vectors (lesson 05);
* `semantic_ids`: semantic IDs with a collision token, lookups both ways, a prefix trie;
* `stats`: per-level token statistics for the hourglass (entropy, Gini, utilisation, paths);
* `fsq`: finite scalar quantisation, a fixed grid with no codebook to learn (lesson 04's aside).
"""
from course_lib.quantize.fsq import FSQ
from course_lib.quantize.vq import VectorQuantizer, VQConfig, VQResult

__all__ = ["FSQ", "VectorQuantizer", "VQConfig", "VQResult"]
