"""Matrix factorisation with BPR: the score is a dot product, the loss is BPR on the batch's
triples, `fit` learns a planted structure that `evaluate_model` measures, bad input fails
clearly."""
import numpy as np
import pytest
import torch

from course_lib import losses
from course_lib.data.sequences import leave_one_out
from course_lib.data.world import WorldConfig, make_world
from course_lib.models.mf import MatrixFactorisation, MFConfig, svd_item_vectors
from course_lib.train import evaluate_model, fit, shuffled_batches

N_USERS, N_ITEMS = 40, 20


def model(**changes) -> MatrixFactorisation:
    torch.manual_seed(0)
    return MatrixFactorisation(MFConfig(n_users=N_USERS, n_items=N_ITEMS, dim=8, **changes))


def test_scores_are_dot_products_and_padding_is_never_ranked():
    mf = model()
    users = torch.tensor([1, 7, 40])
    scores = mf.scores({"users": users})
    assert scores.shape == (3, N_ITEMS + 1) and torch.isinf(scores[:, 0]).all()
    expected = mf.user.weight[users] @ mf.item.weight[1:].T                 # (3, I)
    assert torch.allclose(scores[:, 1:], expected)
    assert torch.allclose(mf.score(users, torch.tensor([[3], [4], [5]]))[:, 0],
                          expected[torch.arange(3), torch.tensor([2, 3, 4])])


def test_loss_is_bpr_on_the_batch_triples():
    mf = model()
    batch = {"users": torch.tensor([1, 2, 3]), "items": torch.tensor([4, 5, 6]),
             "negatives": torch.tensor([[7, 8], [9, 10], [11, 12]])}
    positive = (mf.user.weight[batch["users"]] * mf.item.weight[batch["items"]]).sum(1)
    negative = torch.einsum("bd,bnd->bn", mf.user.weight[batch["users"]],
                            mf.item.weight[batch["negatives"]])
    assert torch.allclose(mf.loss(batch), losses.bpr_loss(positive, negative))


def test_without_negatives_the_loss_draws_uniform_ones_from_torchs_generator():
    mf = model(n_negatives=3)
    batch = {"users": torch.tensor([1, 2]), "items": torch.tensor([4, 5])}
    torch.manual_seed(5)
    drawn = mf.loss(batch)
    torch.manual_seed(5)
    negatives = torch.randint(1, N_ITEMS + 1, (2, 3))
    assert torch.allclose(drawn, mf.loss({**batch, "negatives": negatives}))


@pytest.fixture
def split():
    """Two groups of users, each interacting with every item of its own half of the catalogue,
    in a random order."""
    rng = np.random.default_rng(0)
    seqs = {}
    for user in range(1, N_USERS + 1):
        half = np.arange(1, 11) if user <= N_USERS // 2 else np.arange(11, 21)
        seqs[user] = rng.permutation(half)
    return leave_one_out(seqs, N_ITEMS)


def test_fit_learns_the_two_groups(split):
    users = np.concatenate([[u] * len(items) for u, items in split.train.items()])
    pairs = {"users": torch.as_tensor(users),
             "items": torch.as_tensor(np.concatenate(list(split.train.values())))}
    mf = model()
    test = split.evaluation("test")
    # a test user's only unseen item in its half is the target; the other half is all unseen
    before = evaluate_model(mf, test, ks=(1,))["HR@1"]
    result = fit(mf, lambda epoch: shuffled_batches(pairs, 32, seed=epoch), epochs=60, lr=0.05,
                 progress=False)
    after = evaluate_model(mf, test, ks=(1,))["HR@1"]
    assert result.train_loss[-1] < 0.6 * result.train_loss[0]      # from ln 2 at the start
    assert after > 0.9 and before < 0.3, (before, after)


@pytest.mark.parametrize("batch, error, match", [
    ({"users": torch.tensor([0, 1]), "items": torch.tensor([1, 2])}, ValueError, r"n_users=\.\.\."),
    ({"users": torch.tensor([1, 41]), "items": torch.tensor([1, 2])}, ValueError, r"users must be ids in \[1, 40\]"),
    ({"users": torch.tensor([1, 2]), "items": torch.tensor([1, 21])}, ValueError, r"n_items=\.\.\."),
    ({"users": torch.tensor([1.0, 2.0]), "items": torch.tensor([1, 2])}, TypeError, "integer ids"),
    ({"users": torch.tensor([1, 2]), "items": torch.tensor([1, 2, 3])}, ValueError, "same length"),
    ({"users": torch.tensor([1]), "items": torch.tensor([1]), "negatives": torch.tensor([[0]])},
     ValueError, "negatives must be ids"),
])
def test_bad_batches_say_what_was_wrong(batch, error, match):
    with pytest.raises(error, match=match):
        model().loss(batch)


def test_scores_need_the_users():
    with pytest.raises(TypeError, match="batch dict with 'users'"):
        model().scores(torch.tensor([[1, 2, 3]]))


@pytest.mark.parametrize("changes, match", [
    (dict(n_users=0), "n_users must be an int >= 1"),
    (dict(dim=0), "dim must be an int >= 1"),
    (dict(n_negatives=0), "n_negatives must be an int >= 1"),
    (dict(init_std=0.0), "init_std must be > 0"),
])
def test_bad_config_is_refused(changes, match):
    settings = dict(n_users=N_USERS, n_items=N_ITEMS)
    settings.update(changes)
    with pytest.raises(ValueError, match=match):
        MFConfig(**settings)


@pytest.fixture(scope="module")
def small_world():
    return make_world(WorldConfig(n_users=300, n_items=200, seed=3))


def test_svd_item_vectors_have_unit_rows_and_zero_rows_for_cold_items(small_world):
    vectors = svd_item_vectors(small_world.interactions, small_world.n_items, dim=8)
    norms = vectors.norm(dim=1)
    cold = torch.tensor(small_world.items["is_cold"].to_numpy())
    assert vectors.shape == (small_world.n_items, 8)
    assert torch.allclose(norms[~cold], torch.ones(int((~cold).sum())), atol=1e-5)
    assert torch.all(norms[cold] == 0)
