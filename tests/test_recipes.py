"""course_lib.recipes: the laptop recipe on a CPU, the papers' on a GPU, per dataset."""
import pytest
import torch

from course_lib.recipes import LAPTOP_MINUTES, SEQUENCE, TIGER_RECIPES, recipe_for


def test_a_cpu_gets_the_laptop_recipe_with_a_time_budget_and_a_smaller_tiger():
    recipe = recipe_for("amazon-toys", torch.device("cpu"))
    assert recipe.kind == "laptop" and recipe.minutes == LAPTOP_MINUTES
    assert recipe.sequence == SEQUENCE["short"]
    paper = TIGER_RECIPES["paper"].config
    assert recipe.tiger.config.encoder_layers < paper.encoder_layers
    assert recipe.tiger.valid_users is not None


def test_the_paper_recipe_has_the_papers_sizes_and_no_time_limit():
    recipe = recipe_for("ml-1m", kind="paper")
    assert recipe.minutes is None and recipe.sequence.max_len == 200
    assert recipe.sequence.d_model == 50 and recipe.tiger.lr == 1e-2
    assert recipe.tiger.constant_steps == 10_000 and recipe.tiger.config.encoder_layers == 4
    assert recipe_for("ml-20m", kind="paper").sequence.d_model == 256


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        recipe_for("amazon-toys", kind="desktop")


def test_train_refuses_an_unknown_model_naming_the_known_ones():
    from course_lib.recipes import MODELS, Run, train
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        train("gpt", None, Run(recipe_for("amazon-toys"), epochs=1))
    assert "tiger" in MODELS and "pinrec" in MODELS
