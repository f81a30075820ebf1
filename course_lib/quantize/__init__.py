"""Quantizers: vector quantisation with STE, EMA, k-means init and dead-code reset (`vq`);
semantic IDs built from per-level codes (`semantic_ids`)."""
from course_lib.quantize.vq import VectorQuantizer, VQConfig, VQResult

__all__ = ["VectorQuantizer", "VQConfig", "VQResult"]
