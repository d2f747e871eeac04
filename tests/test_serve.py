"""Export and serving: exported scores equal the model's, manifest digests, index recall, seen items hidden,
and the real HTTP server on a free loopback port with every endpoint and error case."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gnnrec.cli import main
from gnnrec.config import load_config
from gnnrec.errors import GnnrecError
from gnnrec.hashing import file_sha256
from gnnrec.models.gte import GTE
from gnnrec.models.mf import MF
from gnnrec.runs import Run
from gnnrec.serving.ann import build_index, index_top_k
from gnnrec.serving.export import Export, export_run
from gnnrec.train import train
from tests.test_training import SMALL

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-epoch LightGCN whose original ids are not the internal order (reversed, prefixed)."""
    out = tmp_path_factory.mktemp("runs")
    result = train(load_config(None, SMALL + [f"output.dir={out}", "output.name=r", "model.name=lightgcn",
                                              "train.max_epochs=2"]))
    run = Run.open(result.run_dir)
    n_users, n_items = run.dataset.n_users, run.dataset.n_items
    run.dataset.user_info["user_id"] = np.array([f"u{n_users - i}" for i in range(n_users)])
    run.dataset.item_info["item_id"] = np.array([f"i{n_items - i}" for i in range(n_items)])
    return run


@pytest.fixture(scope="module")
def exports(run, tmp_path_factory):
    base = tmp_path_factory.mktemp("exports")
    for kind in ("hnsw", "exact", "none"):
        export_run(run, base / kind, index=kind, recall_k=10)
    return {kind: Export.load(base / kind) for kind in ("hnsw", "exact", "none")}


def known(run):
    return sp.csr_matrix(run.dataset.train + run.dataset.valid + run.dataset.test)


def test_exported_embeddings_reproduce_the_model_scores(run, exports):
    e = exports["none"]
    assert e.user_emb.dtype == e.item_emb.dtype == np.float32
    assert list(e.user_ids[:2]) == ["u300", "u299"] and list(e.item_ids[:2]) == ["i200", "i199"]
    users = ["u300", "u150", "u7", "u1"]
    np.testing.assert_allclose(e.user_emb[e.internal("user", users)] @ e.item_emb.T, run.scores(users),
                               rtol=1e-5, atol=1e-6)
    assert (e.known != known(run)).nnz == 0
    m = e.manifest
    assert m["model"] == "lightgcn" and m["scoring"].startswith("dot") and m["n_users"] == 300
    assert json.loads((e.folder / "metrics.json").read_text()) == json.loads((run.folder / "metrics.json").read_text())


def test_manifest_sha256_matches_every_file_and_a_change_is_caught(exports, tmp_path):
    folder = exports["hnsw"].folder
    files = exports["hnsw"].manifest["files"]
    assert set(files) == {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert "items_hnsw.faiss" in files
    for name, digest in files.items():
        assert file_sha256(folder / name) == digest, name
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    emb = np.load(copy / "item_emb.npy")
    emb[0, 0] += 1.0
    np.save(copy / "item_emb.npy", emb)
    with pytest.raises(GnnrecError, match="changed since export.*item_emb.npy"):
        Export.load(copy)


def test_index_recall_against_exact_is_reported_and_true(run, exports):
    hnsw, exact = exports["hnsw"].manifest["index"], exports["exact"].manifest["index"]
    assert hnsw["type"] == "hnsw" and hnsw["recall"]["k"] == 10 and hnsw["recall"]["users"] == 300
    assert hnsw["recall"]["value"] >= 0.9 and exact["recall"]["value"] == pytest.approx(1.0)
    users = list(exports["hnsw"].user_ids)
    truth = {r["user"]: set(r["items"]) for r in run.recommend(users, k=10)}
    served = exports["hnsw"].recommend(users, k=10)
    recall = np.mean([len(truth[r["user"]] & set(r["items"])) / 10 for r in served])
    assert recall == pytest.approx(hnsw["recall"]["value"], abs=1e-9)


@pytest.mark.parametrize("kind", ["hnsw", "exact", "none"])
def test_seen_items_are_never_returned(run, exports, kind):
    e, seen = exports[kind], known(run)
    users = list(e.user_ids)
    for r in e.recommend(users, k=run.dataset.n_items):  # every unseen item, and no seen one
        u = e.internal("user", [r["user"]])[0]
        got = e.internal("item", r["items"])
        assert not set(got) & set(seen[u].indices)
        assert len(got) == run.dataset.n_items - seen[u].nnz and np.all(np.diff(r["scores"]) <= 0)
    top = e.recommend(users[:50], k=20, exclude_seen=False)
    assert any(set(e.internal("item", r["items"])) & set(seen[e.internal("user", [r["user"]])[0]].indices) for r in top)
    if kind != "hnsw":  # exact scoring gives the model's own recommendations
        assert [r["items"] for r in e.recommend(users, k=10)] == [r["items"] for r in run.recommend(users, k=10)]


def test_index_search_filters_seen_and_falls_back_when_short():
    items = np.eye(4, dtype=np.float32)[:, :3] * np.array([[3.0], [2.0], [1.0], [0.5]], dtype=np.float32)
    items[3] = [0.1, 0.1, 0.1]
    query = np.ones((2, 3), dtype=np.float32)
    seen = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 0]]))
    top, fallback = index_top_k(build_index(items, "exact"), query, items, 2, seen)
    np.testing.assert_array_equal(top.items, [[1, 3], [0, 1]])
    assert fallback == 0

    class Short:  # an index that finds only one candidate per query: those rows are answered exactly instead
        def search(self, q, k, params=None):
            idx = np.full((len(q), k), -1)
            idx[:, 0] = 1
            return np.full((len(q), k), 9.0, dtype=np.float32), idx
    top, fallback = index_top_k(Short(), query, items, 2, seen)
    np.testing.assert_array_equal(top.items, [[1, 3], [0, 1]])
    assert fallback == 2


def test_allow_list_and_similar_items(run, exports):
    e, seen = exports["hnsw"], known(run)
    allowed = [f"i{i}" for i in range(1, 201, 3)]
    r = e.recommend(["u42"], k=5, items=allowed)[0]
    u, cols = e.internal("user", ["u42"])[0], e.internal("item", allowed)
    scores = e.user_emb[u] @ e.item_emb.T
    unseen = [c for c in cols if c not in set(seen[u].indices)]
    assert r["items"] == list(e.item_ids[sorted(unseen, key=lambda c: -scores[c])[:5]])
    s = e.similar_items("i17", k=4)
    i = e.internal("item", ["i17"])[0]
    unit = e.item_emb / np.linalg.norm(e.item_emb, axis=1, keepdims=True)
    cos = unit @ unit[i]
    cos[i] = -np.inf
    assert s["items"] == list(e.item_ids[np.argsort(-cos, kind="stable")[:4]])
    np.testing.assert_allclose(s["scores"], np.sort(cos)[::-1][:4], rtol=1e-5)


def test_models_that_do_not_score_by_dot_product_are_refused(run, tmp_path):
    gte = Run(run.folder, run.config, run.dataset, GTE(run.dataset))
    with pytest.raises(GnnrecError, match="not dot products"):
        export_run(gte, tmp_path / "gte")

    class Noisy(MF):  # forward() that does not give the scores score_fn gives
        def forward(self):
            return self.user_emb.weight + torch.randn_like(self.user_emb.weight), self.item_emb.weight

    with pytest.raises(GnnrecError, match="do not reproduce its scores"):
        export_run(Run(run.folder, run.config, run.dataset, Noisy(run.dataset).eval()), tmp_path / "noisy")
    assert not (tmp_path / "gte").exists() and not (tmp_path / "noisy").exists()


def test_cli_export(run, tmp_path, capsys):
    assert main(["export", str(run.folder), "--out", str(tmp_path / "e"), "--index", "exact",
                 "--recall-users", "50"]) == 0
    out = capsys.readouterr().out
    assert "exact index recall@20 vs exact scoring: 1.0000 (50 users)" in out
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["index"]["recall"]["users"] == 50


def test_export_never_lands_on_other_files_and_replaces_only_a_previous_export(run, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    for flags in ([], ["--overwrite"]):  # a folder that is not an export: refused either way, left as it was
        assert main(["export", str(run.folder), "--out", str(other), "--index", "none", *flags]) == 2
        assert "not" in capsys.readouterr().err and (other / "notes.txt").read_text() == "keep me"
    out = tmp_path / "e"
    assert main(["export", str(run.folder), "--out", str(out), "--index", "exact", "--recall-users", "20"]) == 0
    assert main(["export", str(run.folder), "--out", str(out), "--index", "none"]) == 2
    assert "already exists" in capsys.readouterr().err and (out / "items_exact.faiss").is_file()
    assert main(["export", str(run.folder), "--out", str(out), "--index", "none", "--overwrite"]) == 0
    # replaced as a whole: the earlier index file is gone, the new manifest checks out, no work folders left
    assert not (out / "items_exact.faiss").exists() and Export.load(out).manifest["index"]["type"] == "none"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e", "other"]
    # a folder with some other manifest.json is not an export: not replaced
    (other / "manifest.json").write_text('{"name": "my-web-app"}')
    assert main(["export", str(run.folder), "--out", str(other), "--index", "none", "--overwrite"]) == 2
    assert (other / "notes.txt").read_text() == "keep me"


def test_export_into_the_current_folder(run, tmp_path, monkeypatch):
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert main(["export", str(run.folder), "--out", ".", "--index", "none"]) == 0
    assert Export.load(folder).manifest["index"]["type"] == "none"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]


# --- the real server --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(exports):
    """`gnnrec serve` in a subprocess on a free loopback port; stopped (and checked stopped) at the end."""
    yield from serve_folder(exports["hnsw"].folder)


def serve_folder(folder):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gnnrec", "serve", str(folder), "--host",
                             "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.time() + 120
    while True:
        try:
            if client.get("/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"server did not start:\n{proc.communicate()[0][-3000:]}")
        time.sleep(0.3)
    yield client, proc
    client.close()
    proc.terminate()
    proc.wait(timeout=30)


def test_health(server):
    client, _ = server
    assert client.get("/health").json() == {"status": "ok", "model": "lightgcn", "dataset": "synthetic",
                                            "users": 300, "items": 200, "added_items": 0, "index": "hnsw"}


def test_recommend_endpoint(server, exports):
    client, _ = server
    e = exports["hnsw"]
    r = client.post("/recommend", json={"user": "u42", "k": 7})
    assert r.status_code == 200 and r.json() == e.recommend(["u42"], k=7)[0]
    assert len(client.post("/recommend", json={"user": "u42"}).json()["items"]) == 10  # default k
    assert client.post("/recommend", json={"user": "u42", "k": 7, "exclude_seen": False}).json() == \
        e.recommend(["u42"], k=7, exclude_seen=False)[0]
    allowed = ["i3", "i9", "i27", "i81"]
    body = client.post("/recommend", json={"user": "u42", "k": 3, "items": allowed}).json()
    assert body == e.recommend(["u42"], k=3, items=allowed)[0] and set(body["items"]) <= set(allowed)


def test_similar_items_endpoint(server, exports):
    client, _ = server
    r = client.post("/similar-items", json={"item": "i17", "k": 4})
    assert r.status_code == 200 and r.json() == exports["hnsw"].similar_items("i17", 4)


@pytest.mark.parametrize("path, body, status, detail", [
    ("/recommend", {"user": "nobody", "k": 5}, 404, "unknown user id(s) nobody"),
    ("/recommend", {"user": "u42", "k": 5, "items": ["i3", "nothing"]}, 404, "unknown item id(s) nothing"),
    ("/similar-items", {"item": "nothing", "k": 5}, 404, "unknown item id(s) nothing"),
    ("/recommend", {"user": "u42", "k": 0}, 422, "greater than or equal to 1"),
    ("/recommend", {"user": "u42", "k": -3}, 422, "greater than or equal to 1"),
    ("/recommend", {"user": "u42", "k": "many"}, 422, "valid integer"),
    ("/similar-items", {"item": "i17", "k": 0}, 422, "greater than or equal to 1"),
    ("/recommend", {"k": 5}, 422, "Field required"),
    ("/recommend", {"user": "u42", "kk": 5}, 422, "Extra inputs"),
    ("/recommend", {"user": "u42", "items": []}, 422, "at least 1 item"),
    ("/recommend", b'{"user": "u42", "k": ', 422, "JSON decode error"),
    ("/similar-items", b"not json", 422, "JSON decode error"),
])
def test_errors_are_json_with_the_right_status(server, path, body, status, detail):
    client, _ = server
    raw = isinstance(body, bytes)
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if raw else {"json": body}
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and detail in json.dumps(r.json()["detail"])


def test_server_listens_on_loopback_only_and_stops(server):
    client, proc = server
    port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout if shutil.which("ss") else ""
    assert f"0.0.0.0:{port}" not in out and f"*:{port}" not in out
    proc.terminate()
    assert proc.wait(timeout=30) is not None
    with pytest.raises(httpx.TransportError):
        client.get("/health")


# --- brand-new items: POST /items on a FREEDOM export trained without 10% of the items ----------------------

@pytest.fixture(scope="module")
def cold_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cold")
    result = train(load_config(None, SMALL + [f"output.dir={out}", "output.name=f", "model.name=freedom",
                                              "train.max_epochs=1", "data.cold_items=0.1"]))
    run = Run.open(result.run_dir)
    export_run(run, out / "export", index="hnsw", recall_k=10)
    return run, out / "export"


@pytest.fixture(scope="module")
def cold_server(cold_run):
    yield from serve_folder(cold_run[1])


def vectors(cold, j):
    return {name: x[j].tolist() for name, x in cold.features.items()}


def test_new_items_become_recommendable_and_similar(cold_run, cold_server):
    run, folder = cold_run
    client, _ = cold_server
    cold, local = run.dataset.cold, Export.load(folder)
    n = run.dataset.n_items
    for j in range(3):
        r = client.post("/items", json={"item": cold.item_ids[j], "features": vectors(cold, j)})
        assert r.status_code == 201, r.text
        assert r.json() == {"item": cold.item_ids[j], "method": "item_graph", "items": n + j + 1}
    local.add_items(cold.item_ids[:3], {name: x[:3] for name, x in cold.features.items()})
    health = client.get("/health").json()
    assert health["items"] == n + 3 and health["added_items"] == 3
    user = str(local.user_ids[5])
    everything = client.post("/recommend", json={"user": user, "k": n + 3}).json()
    assert set(cold.item_ids[:3]) <= set(everything["items"])
    only_new = client.post("/recommend", json={"user": user, "k": 3, "items": list(cold.item_ids[:3])}).json()
    assert only_new == local.recommend([user], 3, items=list(cold.item_ids[:3]))[0]
    assert only_new["items"][0] == cold.item_ids[:3][np.argmax(local.item_emb[n:] @ local.user_emb[5])]
    similar = client.post("/similar-items", json={"item": cold.item_ids[1], "k": 5}).json()
    assert similar == local.similar_items(cold.item_ids[1], 5)
    back = client.post("/similar-items", json={"item": cold.item_ids[0], "k": n + 2}).json()["items"]
    assert cold.item_ids[1] in back and cold.item_ids[0] not in back


@pytest.mark.parametrize("body, status, detail", [
    ("duplicate-warm", 409, "already exist"),
    ("duplicate-new", 409, "already exist"),
    ("wrong-width", 422, "must have 64 values, got 3"),
    ("missing-modality", 422, "missing ['text']"),
    ("unknown-modality", 422, "unknown ['sound']"),
    ("no-features", 422, "needs 'features'"),
    ("not-numbers", 422, "valid number"),
    ("no-id", 422, "Field required"),
    ("text-without-encoder", 422, "no recorded text encoder"),
    ("empty-text", 422, "empty text"),
    ("blank-id", 422, "should match pattern"),
    ("features-and-text", 422, "both features and text"),
    (b'{"item": "x", "features": ', 422, "JSON decode error"),
])
def test_new_item_errors_are_json_with_the_right_status(cold_run, cold_server, body, status, detail):
    run, _ = cold_run
    client, _ = cold_server
    cold = run.dataset.cold
    good = vectors(cold, 5)
    assert len(good["image"]) == 64
    if isinstance(body, str):
        body = {"duplicate-warm": {"item": str(run.dataset.item_info["item_id"][0]), "features": good},
                "duplicate-new": {"item": "twice", "features": good},
                "wrong-width": {"item": "w", "features": {**good, "image": [1.0, 2.0, 3.0]}},
                "missing-modality": {"item": "m", "features": {"image": good["image"]}},
                "unknown-modality": {"item": "u", "features": {**good, "sound": [1.0]}},
                "no-features": {"item": "n"},
                "not-numbers": {"item": "s", "features": {**good, "image": ["a"] * 64}},
                "no-id": {"features": good},
                "text-without-encoder": {"item": "t", "text": {"text": "a red bicycle"}},
                "empty-text": {"item": "e", "text": "   "},
                "blank-id": {"item": " ", "features": good},
                "features-and-text": {"item": "b", "features": good, "text": {"text": "a red bicycle"}}}[body]
        if body.get("item") == "twice":
            assert client.post("/items", json=body).status_code == 201
        r = client.post("/items", json=body)
    else:
        r = client.post("/items", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and detail in json.dumps(r.json()["detail"])

