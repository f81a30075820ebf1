"""Matrix factorisation trained with BPR (Rendle et al., "BPR: Bayesian Personalized Ranking
from Implicit Feedback", UAI 2009): the collaborative-filtering baseline of lesson 09.

    s(u, i) = p_u . q_i                      p_u (D,) a user's vector, q_i (D,) an item's
    loss    = mean over (u, i, j) of -ln sigma(s(u, i) - s(u, j))      (`losses.bpr_loss`)

A training triple is a user u, an item i the user interacted with, and a negative j drawn
uniformly from the catalogue (LearnBPR's sampling, section 4.1 of the paper; a negative may
by chance be an item the user knows, as in the paper). The model sees no order: it scores
users, not histories.

Training: `course_lib.train.fit` on batches {"users": (B,), "items": (B,)} of (user, item)
pairs, e.g. `shuffled_batches`; a batch may also bring its own "negatives" (B, N).
Evaluation: `scores(batch)` reads batch["users"] (the batch `evaluate_model` hands over).

`svd_item_vectors` is the other factorisation of the course: item vectors from a truncated SVD
of the user x item matrix, no training loop, which lesson 05 clusters into collaborative IDs.

Dimensions: B pairs or users in a batch, N negatives per pair, D factor width, U users
(ids 1..U), I items (ids 1..I, 0 is padding).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import TruncatedSVD
from torch import Tensor, nn

from course_lib import losses
from course_lib.data.world import CONSUMED


@dataclass
class MFConfig:
    """Sizes. Defaults: 32 factors initialised N(0, 0.1^2) (the paper's LearnBPR draws them
    from a normal with small variance), one uniform negative per positive pair."""

    n_users: int
    n_items: int
    dim: int = 32
    init_std: float = 0.1
    n_negatives: int = 1

    def __post_init__(self):
        for name in ("n_users", "n_items", "dim", "n_negatives"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not self.init_std > 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std!r}")


class MatrixFactorisation(nn.Module):
    """User and item embeddings whose dot product is the score; user 0 and item 0 are padding."""

    def __init__(self, config: MFConfig):
        super().__init__()
        self.config = config
        self.user = nn.Embedding(config.n_users + 1, config.dim)
        self.item = nn.Embedding(config.n_items + 1, config.dim, padding_idx=0)
        nn.init.normal_(self.user.weight, std=config.init_std)
        nn.init.normal_(self.item.weight, std=config.init_std)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """s(u, i) for users (B,) and items (B, N): (B, N)."""
        return torch.einsum("bd,bnd->bn", self.user(users), self.item(items))

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """BPR on a batch {"users": (B,), "items": (B,)}, with uniform negatives in 1..I drawn
        from torch's generator unless the batch has "negatives" (B, N)."""
        users = self._check_ids(batch["users"], self.config.n_users, "users")
        items = self._check_ids(batch["items"], self.config.n_items, "items")
        if items.shape != users.shape:
            raise ValueError(f"users and items must be (B,) pairs of the same length, got "
                             f"{tuple(users.shape)} and {tuple(items.shape)}")
        negatives = batch.get("negatives")
        if negatives is None:
            negatives = torch.randint(1, self.config.n_items + 1,
                                      (len(users), self.config.n_negatives), device=users.device)
        negatives = self._check_ids(negatives, self.config.n_items, "negatives")  # (B, N)
        positive = self.score(users, items[:, None])[:, 0]                 # (B,)
        return losses.bpr_loss(positive, self.score(users, negatives))     # vs (B, N)

    def scores(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, I + 1) scores of every item for the users batch["users"] (B,); column 0
        (padding) is -inf."""
        if not isinstance(batch, dict) or "users" not in batch:
            raise TypeError("MatrixFactorisation.scores takes a batch dict with 'users' (B,), "
                            "e.g. {'users': eval_set.users}: it scores users, not histories")
        users = self._check_ids(batch["users"], self.config.n_users, "users")
        out = self.user(users) @ self.item.weight.T                        # (B, I + 1)
        out[:, 0] = float("-inf")
        return out

    @staticmethod
    def _check_ids(ids, n: int, name: str) -> Tensor:
        if not torch.is_tensor(ids) or ids.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be a tensor of integer ids, got "
                            f"{getattr(ids, 'dtype', type(ids).__name__)}")
        if ids.numel() and (ids.min() < 1 or ids.max() > n):
            field = "n_users" if name == "users" else "n_items"
            raise ValueError(f"{name} must be ids in [1, {n}] (0 is padding), found "
                             f"{int(ids.min())}..{int(ids.max())}; drop padding rows, or set "
                             f"MFConfig({field}=...) to the largest id")
        return ids.long()


def svd_item_vectors(interactions: pd.DataFrame, n_items: int, dim: int = 32,
                     seed: int = 0, actions=CONSUMED) -> Tensor:
    """Collaborative item vectors by a truncated SVD of the binary user x item matrix: the
    closed-form factorisation (Sarwar et al. 2000), a stand-in for the LightGCN vectors
    ColaRec clusters into IDs (lesson 05).

    Returns (I, dim), row i - 1 for item i, each row scaled to unit length so that k-means
    compares items by the direction of their user profile, not by popularity. Items with no
    interaction (cold items) get a zero row: collaborative IDs cannot place them.
    """
    if "action" in interactions and actions is not None:
        interactions = interactions[interactions["action"].isin(actions)]
    users = interactions["user"].astype("category").cat.codes.to_numpy()
    items = interactions["item"].to_numpy() - 1
    if items.size == 0:
        raise ValueError("no interactions to factorise; check the `actions` filter")
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"item ids must be in [1, {n_items}]; 0 is padding")
    if not 1 <= dim < min(users.max() + 1, n_items):
        raise ValueError(f"dim must be in [1, min(users, items) - 1], got {dim}")
    from scipy.sparse import csr_matrix
    matrix = csr_matrix((np.ones(len(items)), (users, items)),
                        shape=(users.max() + 1, n_items))
    matrix.data[:] = 1.0                                                   # binary, repeats once
    svd = TruncatedSVD(n_components=dim, random_state=seed).fit(matrix)
    vectors = svd.components_.T * svd.singular_values_                     # (I, dim)
    seen = np.bincount(items, minlength=n_items) > 0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=seen[:, None])
    return torch.as_tensor(vectors, dtype=torch.float32)
