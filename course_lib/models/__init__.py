"""Recommendation models, one file per model. Each has `loss(batch)` for
`course_lib.train.fit`; recommenders give `scores(batch)` (B, I + 1) or `recommend(batch, k)`
(B, k) for `course_lib.train.evaluate_model`, where batch is an `EvalSet.batch` dict (a plain
history tensor (B, T) also works for the models that read only the history)."""
