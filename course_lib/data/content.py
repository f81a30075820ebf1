"""Content vectors from tokens: the one text-to-vector step behind every dataset's `content`.

Each item is a document of tokens (title words, "genre:comedy", "brand:nivea",
"attribute:17", ...). Latent semantic analysis (Deerwester et al. 1990) turns the documents
into dense vectors: TF-IDF weights, then a truncated SVD to D dimensions, then unit L2 norm,
so that cosine similarity is a dot product. These are the vectors that the semantic-ID
lessons quantize; TIGER encodes item text with Sentence-T5 instead (Rajput et al. 2023),
which `lsa_content` stands in for without a download.

Shapes: I items, D = dim; the result has one row per item id plus row 0 for padding.
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

DEFAULT_DIM = 32


def lsa_content(documents: list[list[str]], items, dim: int | None = DEFAULT_DIM,
                seed: int = 0) -> np.ndarray:
    """Content vectors (max(items) + 1, D) float32: row items[j] is the vector of
    documents[j], row 0 (padding) and rows of ids not in `items` are zeros; the others have
    unit L2 norm (an item whose document is empty or shares no token keeps a zero row).

    dim: D, which must be below the number of distinct tokens and at most the number of
    documents. None: the TF-IDF vectors themselves when there are at most DEFAULT_DIM
    distinct tokens (D = their number: nothing to reduce), else the SVD to
    min(DEFAULT_DIM, documents) dimensions.
    """
    items = np.asarray(items, dtype=np.int64)
    if len(documents) != len(items):
        raise ValueError(f"got {len(documents)} documents for {len(items)} items; give one "
                         "token list per item")
    if len(items) == 0 or items.min() < 1:
        raise ValueError("item ids must be >= 1 (0 is padding), and there must be at least one")
    if dim is not None and dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    try:
        tfidf = TfidfVectorizer(analyzer=_identity).fit_transform(documents)  # (I, features)
    except ValueError as error:          # sklearn: "empty vocabulary"
        raise ValueError("the item documents hold no token at all; give items some text or "
                         "attributes") from error
    n_docs, n_features = tfidf.shape
    if dim is None and n_features <= DEFAULT_DIM:
        vectors = tfidf.toarray()                                           # (I, D = features)
    else:
        dim = min(DEFAULT_DIM, n_docs) if dim is None else dim
        if dim >= n_features or dim > n_docs:
            raise ValueError(f"dim={dim} is too large: these {n_docs} items have {n_features} "
                             f"TF-IDF features; pick dim < {n_features} and <= {n_docs}")
        vectors = TruncatedSVD(dim, random_state=seed).fit_transform(tfidf)  # (I, D)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    content = np.zeros((int(items.max()) + 1, vectors.shape[1]), dtype=np.float32)
    content[items] = vectors
    return content


def _identity(tokens: list[str]) -> list[str]:
    return tokens
