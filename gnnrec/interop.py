"""Hand a dataset's training graph to other graph libraries: PyTorch Geometric and DGL.

gnnrec propagates with its own operator (torch sparse CSR, see ``gnnrec.graphs``); these functions only
convert. Both give the training interactions (``dataset.train``) as a bipartite graph with user -> item
edges (``rates``) and their reverse (``rated_by``).

DGL: no DGL release imports with torch >= 2.5 (the newest wheel, 2.1.0 for Python 3.11, needs
torch <= 2.2.1 and fails at ``import dgl`` with newer torch), and gnnrec needs a newer torch. So
``dgl_graph_data`` gives the exact arrays ``dgl.heterograph`` takes, without importing DGL, and ``to_dgl``
builds the graph where DGL does import.
"""
from __future__ import annotations

import numpy as np
import torch

from gnnrec.data.dataset import RecDataset
from gnnrec.errors import GnnrecError

USER_ITEM = ("user", "rates", "item")
ITEM_USER = ("item", "rated_by", "user")

DGL_UNAVAILABLE = ("DGL cannot be imported ({error}); no DGL release imports with torch >= 2.5 (the newest "
                   "wheel, 2.1.0, needs torch <= 2.2.1) and this environment has torch {torch}. Use "
                   "gnnrec.interop.dgl_graph_data(dataset) for the arrays dgl.heterograph takes, or "
                   "gnnrec.interop.to_pyg(dataset) for PyTorch Geometric.")


def to_pyg(dataset: RecDataset):
    """The training graph as a PyG ``HeteroData``; the same as ``dataset.to_pyg()``."""
    return dataset.to_pyg()


def dgl_graph_data(dataset: RecDataset) -> dict:
    """The arguments of ``dgl.heterograph`` for the training graph, without importing DGL.

    Returns ``{"data_dict": {("user", "rates", "item"): (u, i), ("item", "rated_by", "user"): (i, u)},
    "num_nodes_dict": {"user": n_users, "item": n_items}}`` with int64 torch tensors, one edge per training
    interaction in CSR order (users ascending, items ascending within a user);
    ``dgl.heterograph(**dgl_graph_data(ds))`` builds the graph. Node counts include users and items without
    training interactions, so ids stay the dataset's ids.
    """
    train = dataset.train.tocsr()
    u = torch.from_numpy(np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr)))
    i = torch.from_numpy(train.indices.astype(np.int64))
    return {
        "data_dict": {USER_ITEM: (u, i), ITEM_USER: (i.clone(), u.clone())},
        "num_nodes_dict": {"user": dataset.n_users, "item": dataset.n_items},
    }


def to_dgl(dataset: RecDataset):
    """The training graph as a ``dgl.DGLGraph`` (heterograph with ``rates``/``rated_by`` edges).

    Raises ``GnnrecError`` saying why when DGL cannot be imported.
    """
    try:
        import dgl
    except Exception as error:  # ImportError, or DGL's own failure against a newer torch at import time
        raise GnnrecError(DGL_UNAVAILABLE.format(error=f"{type(error).__name__}: {error}",
                                                 torch=torch.__version__)) from error
    return dgl.heterograph(**dgl_graph_data(dataset))
