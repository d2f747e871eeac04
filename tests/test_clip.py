"""open_clip image and CLIP-text encoders end to end with a small randomly initialised model built from a JSON
architecture (the code path pretrained weights take), including missing and corrupt images."""
import json

import numpy as np
import pytest

open_clip = pytest.importorskip("open_clip")

TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny-clip-test.json"
    path.write_text(json.dumps(TINY))
    return path


def write_items(folder, n=5):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        if i == 2:
            continue  # missing
        if i == 4:
            (folder / f"{i}.jpg").write_bytes(b"not an image at all")  # corrupt
            continue
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    table = folder.parent / "items.csv"
    table.write_text("".join(f"{i},item number {i}\n" for i in range(n)))
    return table


def test_clip_image_and_text_encoders_from_the_cli(tmp_path, tiny_config, capsys):
    from gnnrec.cli import main

    table = write_items(tmp_path / "covers")
    store = tmp_path / "store"
    common = ["--items", str(table), "--model-config", str(tiny_config), "--out", str(store)]
    assert main(["encode", "image", *common, "--images", str(tmp_path / "covers"), "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "item 2: image missing" in out and "item 4: image unreadable" in out
    image = np.load(store / "image_feat.npy")
    manifest = json.loads((store / "image_feat.json").read_text())
    assert image.shape == (5, 16) and manifest["model_config"] == str(tiny_config)
    assert set(manifest["filled_with_mean"]) == {"2", "4"}
    good = image[[0, 1, 3]]
    assert np.allclose(np.linalg.norm(good, axis=1), 1, atol=1e-5)
    assert np.allclose(image[2], good.mean(axis=0)) and np.allclose(image[4], good.mean(axis=0))
    assert main(["encode", "image", *common, "--images", str(tmp_path / "covers")]) == 0
    assert "already encoded" in capsys.readouterr().out
    assert main(["encode", "clip-text", *common]) == 0
    text = np.load(store / "clip_text_feat.npy")
    assert text.shape == (5, 16) and np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-5)
    assert len({tuple(np.round(r, 5)) for r in text}) == 5  # different titles, different vectors


def test_clip_errors_are_clear(tmp_path, tiny_config):
    from gnnrec.encoders.image import encode_images, image_paths, load_clip
    from gnnrec.errors import ConfigError, DataError, GnnrecError

    with pytest.raises(ConfigError, match="unknown open_clip architecture"):
        load_clip("no-such-net")
    with pytest.raises(DataError, match="image folder not found"):
        image_paths(tmp_path / "nothing", ["1"])
    with pytest.raises(GnnrecError, match="could not load the open_clip weights .*missing.bin"):
        load_clip("", str(tmp_path / "missing.bin"), str(tiny_config))  # weights that cannot be had: no traceback
    (tmp_path / "empty").mkdir()
    model, preprocess, _ = load_clip("", None, str(tiny_config))
    with pytest.raises(DataError, match="every input is missing"):
        encode_images(image_paths(tmp_path / "empty", ["1", "2"]), model, preprocess, progress=False)
