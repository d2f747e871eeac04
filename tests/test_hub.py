import os

from gnnrec.hub import offline_if_local, packaged_folder


def test_offline_only_while_loading_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with offline_if_local(tmp_path):
        assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in os.environ  # no process-wide side effect
    with offline_if_local(tmp_path / "not-a-folder"):
        assert "HF_HUB_OFFLINE" not in os.environ
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with offline_if_local(tmp_path):
        pass
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_packaged_folder_finds_installed_packages_only():
    assert packaged_folder("gnnrec").name == "gnnrec"
    assert packaged_folder("no_such_package_here") is None
