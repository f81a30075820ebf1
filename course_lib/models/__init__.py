"""Recommendation models, one file per model. Each has `loss(batch)` for `course_lib.train.fit`
and `scores(history)` returning a (B, I + 1) score matrix for `course_lib.metrics`."""
