from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name} not available at {path} (the shared data folder is absent)")
    return path


@pytest.fixture(scope="session")
def small_synthetic():
    from gnnrec.data import make_synthetic

    return make_synthetic(n_users=300, n_items=200, n_clusters=4, mean_interactions=15, seed=1).validate()
