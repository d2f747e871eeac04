"""The downloader: checksum verification, a resumable .part file, and a clear message without network."""
import hashlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from gnnrec.data.download import download
from gnnrec.errors import DataError, GnnrecError


@pytest.fixture
def files_server(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "pairs.csv").write_text("user,item,timestamp\n1,2,3\n")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", hashlib.sha256((root / "pairs.csv").read_bytes()).hexdigest()
    server.shutdown()
    server.server_close()


def card(tmp_path, url, digest):
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "source": "https://example.org/x", "expected": {},
                                    "download": {"pairs.csv": url}, "sha256": {"pairs.csv": digest}}))
    return path


def test_download_verifies_checksums(tmp_path, files_server):
    base, digest = files_server
    out = tmp_path / "data"
    assert download(card(tmp_path, f"{base}/pairs.csv", digest), out) == {"pairs.csv": digest}
    assert (out / "pairs.csv").read_text().startswith("user,item")
    assert not (out / "pairs.csv.part").exists()
    # a file already there with the card's checksum is kept: no request is made (this address answers nothing)
    assert download(card(tmp_path, "http://127.0.0.1:9/pairs.csv", digest), out, timeout=2) == {"pairs.csv": digest}
    (out / "pairs.csv").write_text("user,item,timestamp\n9,9,9\n")  # a stale or damaged copy is fetched again
    assert download(card(tmp_path, f"{base}/pairs.csv", digest), out) == {"pairs.csv": digest}
    assert (out / "pairs.csv").read_text() == "user,item,timestamp\n1,2,3\n"
    with pytest.raises(DataError, match="differs from the card"):
        download(card(tmp_path, f"{base}/pairs.csv", "0" * 64), tmp_path / "other")
    assert not (tmp_path / "other" / "pairs.csv").exists()


def test_download_without_network_says_what_to_do(tmp_path):
    path = card(tmp_path, "http://127.0.0.1:9/pairs.csv", "0" * 64)
    with pytest.raises(GnnrecError, match="fetch it by hand from https://example.org/x into .* run this command again"):
        download(path, tmp_path / "data", timeout=2)
