"""Fetch a dataset's files from the official addresses on its card (``download: {file: url}``), verify them
against the card's sha256, and say clearly what to do when the machine has no network."""
from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from gnnrec.data.cards import load_card
from gnnrec.hashing import file_sha256
from gnnrec.errors import DataError, GnnrecError


def fetch(url: str, target: Path, timeout: float = 30.0) -> None:
    """Stream ``url`` to ``target`` through a ``.part`` file, so an interrupted download never looks complete."""
    part = target.with_name(target.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as fh:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
            while block := resp.read(1 << 20):
                fh.write(block)
                bar.update(len(block))
    shutil.move(part, target)


def download(card_path: Path, out: Path, timeout: float = 30.0) -> dict[str, str]:
    """Download every file the card lists into ``out``; files already there with the right checksum are kept.
    Returns ``{file: sha256}``. Files whose card has no checksum are reported with theirs, to pin."""
    card = load_card(card_path)
    urls = card.get("download") or {}
    if not urls:
        raise DataError("this card lists no download addresses (the data is not freely downloadable; see its "
                        "'source')", path=card_path, field="download")
    sums = card.get("sha256") or {}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    got = {}
    for name, url in urls.items():
        target = out / name
        if target.is_file() and sums.get(name) and file_sha256(target) == sums[name]:
            got[name] = sums[name]
            continue
        try:
            fetch(url, target, timeout)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            raise GnnrecError(f"cannot download {url} ({getattr(exc, 'reason', exc)}). Without network access, fetch "
                              f"it by hand from {card.get('source', url)} into {out}/{name} and run this command again: "
                              "files already there that match the card's sha256 are kept, not fetched") from None
        got[name] = file_sha256(target)
        if sums.get(name) and got[name] != sums[name]:
            target.unlink()
            raise DataError(f"sha256 {got[name]} differs from the card's {sums[name]}; the file was removed",
                            path=target)
    return got
