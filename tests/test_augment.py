"""LLMRec augmentations: hostile-answer parsing, the three offline steps end to end (CLI, a local
OpenAI-compatible server, the real MiniLM encoder), and augmented triples reaching training."""
import json

import numpy as np
import pytest
import torch

from gnnrec.augment.parse import TitleMatcher, parse_edge_answer, parse_fields
from gnnrec.augment.prompts import load_template
from gnnrec.encoders.text import embed_with_mean_fill
from gnnrec.errors import ConfigError, DataError

TITLES = ["Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "Get Shorty (1995)", "Copycat (1995)",
          "Star Wars (1977)"]
POOL = [0, 1, 2, 3]


@pytest.mark.parametrize("answer, expected", [
    ("like: 2, dislike: 4", ((1, 3), None)),
    ("Sure! Based on the history, like: 1\ndislike: 3. Hope this helps!", ((0, 2), None)),
    ("3, 1", ((2, 0), None)),
    ("like: Toy Stroy, dislike: Four Rooms (1995)", ((0, 2), None)),  # typo'd title
    ("like: GOLDENEYE!!, dislike: 1", ((1, 0), None)),
    ("like: 9, dislike: 1", (None, "out_of_pool")),  # number beyond the pool
    ("like: Copycat, dislike: 1", (None, "out_of_pool")),  # a real item, not a candidate
    ("like: Star Wars, dislike: 2", (None, "out_of_pool")),
    ("like: The Matrix, dislike: 2", (None, "out_of_catalogue")),
    ("like: 2, dislike: 2", (None, "same_item")),
    ("", (None, "empty")),
    ("   \n", (None, "empty")),
    ("1. Fargo (1996)\n2. Princess Bride", (None, "malformed")),  # a list of titles is not a choice
    ("I cannot help with that.", (None, "malformed")),
    ("like: 2", (None, "malformed")),
])
def test_edge_answers_never_invent_ids(answer, expected):
    assert parse_edge_answer(answer, POOL, TitleMatcher(TITLES)) == expected


def test_field_answers():
    fields = ["director", "country", "language"]
    found, why = parse_fields("Here you go:\nDirector: J. J. Abrams\ncountry: USA; Language: English. Enjoy it", fields)
    assert why is None and found == {"director": "J. J. Abrams", "country": "USA", "language": "English"}
    assert parse_fields("The movie was directed by someone.", fields) == ({}, "malformed")
    assert parse_fields("", fields) == ({}, "empty")
    found, _ = parse_fields("liked genres: comedy, drama; disliked genres: horror", ["liked genres", "disliked genres"])
    assert found == {"liked genres": "comedy, drama", "disliked genres": "horror"}


def test_mean_fill_only_for_empty_rows():
    def encode(texts):
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    out, filled = embed_with_mean_fill(["ab", None, "abcd"], encode)
    assert filled == 1 and out.tolist() == [[2, 1], [3, 1], [4, 1]]
    with pytest.raises(DataError, match="every input is missing"):
        embed_with_mean_fill([None, None], encode)


def test_templates_reject_unknown_placeholders(tmp_path):
    bad = tmp_path / "edges.txt"
    bad.write_text("History: {history}\nPool: {pool}")
    with pytest.raises(ConfigError, match="pool"):
        load_template("edges", str(bad))
    assert "{candidates}" in load_template("edges")
    bad.write_text("### user\nQ {history} {candidates}\n### assistant\nA")
    with pytest.raises(ConfigError, match="last turn must be"):
        load_template("edges", str(bad))


def test_templates_can_hold_worked_examples():
    from gnnrec.augment.prompts import render

    text = "### system\nBe brief.\n### user\nExample {{literal}}\n### assistant\nlike: 1, dislike: 2\n### user\n{item}?"
    assert render(text, item="Heat") == [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Example {literal}"},
                                         {"role": "assistant", "content": "like: 1, dislike: 2"},
                                         {"role": "user", "content": "Heat?"}]
    assert render("Plain {item}", item="x") == [{"role": "user", "content": "Plain x"}]


def test_edges_file_errors_name_the_line(tmp_path):
    from gnnrec.augment.edges import read_edges, write_edges

    path = tmp_path / "edges.csv"
    write_edges(path, np.array([[0, 1, 2], [3, 4, 5]]))
    assert read_edges(path, 10, 10).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(DataError, match="line 3.*out of range"):
        read_edges(path, 10, 5)
    path.write_text("user,positive,negative\n0,1,x\n")
    with pytest.raises(DataError, match="line 2"):
        read_edges(path, 10, 10)
    path.write_text("u,i,j\n")
    with pytest.raises(DataError, match="line 1"):
        read_edges(path, 10, 10)


def test_augmented_triples_join_every_batch_and_optionally_the_graph(small_synthetic):
    import dataclasses

    from gnnrec.datamodule import RecDataModule

    triples = np.array([[u, (u + 5) % small_synthetic.n_items, (u + 9) % small_synthetic.n_items]
                        for u in range(0, 100)], dtype=np.int64)
    data = dataclasses.replace(small_synthetic, augmented_edges=triples)
    dm = RecDataModule(data, batch_size=512, augment_rate=0.1)
    batches = list(dm.train_dataloader())
    plain = list(RecDataModule(data, batch_size=512).train_dataloader())
    assert [b.shape[1] - p.shape[1] for b, p in zip(batches, plain)] == [round(0.1 * p.shape[1]) for p in plain]
    for b, p in zip(batches, plain):
        assert b.shape[0] == 4 and b[3].tolist() == [0] * p.shape[1] + [1] * (b.shape[1] - p.shape[1])
        extra = b[:3, p.shape[1]:].T.numpy()
        assert torch.equal(b[:3, : p.shape[1]], p)
        assert len({tuple(r) for r in extra}) == len(extra)  # distinct triples
        assert {tuple(r) for r in extra} <= {tuple(r) for r in triples}
    assert (data.graph != data.train).nnz == 0  # graph untouched unless asked
    both = dataclasses.replace(data, augment_graph=True)
    added = both.graph - data.train
    assert added.min() >= 0 and added.nnz == len({(u, p) for u, p, _ in triples} - set(zip(*data.train.nonzero())))
    assert (both.train != data.train).nnz == 0  # evaluation masking still uses the real train split


class ScriptedServer:
    """OpenAI-compatible endpoint answering like a model would: choices, attributes, profiles, some junk."""

    def __init__(self):
        from tests.test_llm import ChatServer

        self.srv = ChatServer()
        handler = self.srv.server.RequestHandlerClass

        def do_POST(h):
            body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
            text = body["messages"][-1]["content"]
            n = len(self.srv.requests)
            self.srv.requests.append(body)
            if "Candidate" in text:
                answer = ["like: 1, dislike: 3", "like: 2, dislike: 2", "no idea", "like: 99, dislike: 1"][n % 4]
            elif "Describe this user" in text:
                answer = "age: 30\ngender: female\nliked genres: drama" if n % 2 else ""
            else:
                answer = "director: Someone; country: France; language: French" if n % 3 else "A fine film."
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

        handler.do_POST = do_POST
        self.url = self.srv.url

    def close(self):
        self.srv.close()


def test_augment_cli_end_to_end_then_llmrec_trains(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sentence_transformers")
    from gnnrec.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server = ScriptedServer()
    data = ["data.synthetic={n_users: 60, n_items: 50, n_clusters: 3, mean_interactions: 8, seed: 3}"]
    out = tmp_path / "aug"
    try:
        base = ["train.max_epochs=2", "train.progress_bar=false", f"output.dir={tmp_path}", "output.name=base"]
        assert main(["train", *data, *base]) == 0
        cfg = tmp_path / "aug.yaml"
        cfg.write_text(f"llm: {{backend: openai, base_url: '{server.url}', batch_size: 4}}\n"
                       f"augment: {{base: '{tmp_path / 'base'}', out: '{out}', candidates: 5, history: 4}}\n")
        for target in ("edges", "items", "users"):
            assert main(["augment", target, str(cfg), *data]) == 0, target
        asked = len(server.srv.requests)
        assert main(["augment", "edges", str(cfg), *data]) == 0
        assert len(server.srv.requests) == asked  # a rerun is answered from the cache
    finally:
        server.close()
    report = json.loads((out / "edges_report.json").read_text())
    assert report["users"] == 60 and report["triples"] == 15  # one user in four answered usably
    assert report["failures"]["same_item"] == 15 and report["failures"]["malformed"] == 15
    assert report["failures"]["out_of_pool"] == 15
    assert report["picked_ranks_like_dislike"] == {"1,3": 15}
    triples = np.loadtxt(out / "edges.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert len(triples) == 15 and len(set(triples[:, 0])) == 15
    attrs = json.loads((out / "features" / "attributes_feat.json").read_text())
    assert attrs["items"] == 50 and attrs["dim"] == 384
    prof = json.loads((out / "profiles_report.json").read_text())
    assert prof["failures"]["empty"] == 30 and prof["mean_filled_rows"] == 30
    assert np.load(out / "features" / "users" / "profile_feat.npy").shape == (60, 384)

    train = ["model.name=llmrec", "train.max_epochs=2", "train.progress_bar=false", f"output.dir={tmp_path}",
             f"data.feature_dirs=[{out / 'features'}]", f"data.augment.edges={out / 'edges.csv'}"]
    assert main(["train", *data, *train]) == 0
    assert "llmrec on synthetic" in capsys.readouterr().out
