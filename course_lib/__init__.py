"""course_lib: the library behind the generative recommendation course.

One idea per module: `device` (device, seed, profile), `data` (toy world, MovieLens,
sequences), `metrics`, `train`, `models`, `grading`. Conventions used everywhere:
item ids run 1..I and 0 is padding; score matrices have I + 1 columns and column 0 is
never ranked.
"""
from course_lib.device import get_device, get_profile, seed_everything

__all__ = ["get_device", "get_profile", "seed_everything"]
__version__ = "0.1.0"
