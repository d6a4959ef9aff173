"""The static site: complete, self-contained, escaped, deterministic, and never half-replaced."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fracbench.leaderboard import Refused, build_site, submit
from fracbench.results import results_json

from .conftest import as_model

HOSTILE = '</td><script>alert("x")</script><img src=x onerror=alert(1)> ../../etc/passwd | **bold** `code`'


@pytest.fixture
def board(tmp_path: Path, tiny_results: dict[str, bytes]) -> Path:
    board = tmp_path / "board"
    submit(as_model(tiny_results["full"], "zoo:tiny-a", 1), board)
    submit(as_model(tiny_results["full"], HOSTILE, 2), board)
    submit(as_model(tiny_results["partial"], "zoo:tiny-b", 3), board)
    return board


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_the_site_has_an_index_a_page_per_entry_and_the_data_as_json_and_markdown(board: Path) -> None:
    out = build_site(board)
    assert out == board / "site"
    built = files(out)
    assert {"index.html", "leaderboard.json", "leaderboard.md", "scatter.svg"} <= set(built)
    pages = [n for n in built if n.startswith("models/") and n.endswith(".html")]
    assert len(pages) == 3 and all(re.fullmatch(r"models/[0-9a-f]{16}\.html", n) for n in pages)
    data = json.loads(built["leaderboard.json"])
    assert [(e["group"], e["rank"]) for e in data["entries"]] == [("full", 1), ("full", 2), ("partial", 1)]
    assert data["entries"][2]["tasks"] == ["bracket_depth", "quote_close"]
    for entry in data["entries"]:  # every page the index links to exists, with its figures
        assert f'href="models/{entry["id"]}.html"' in built["index.html"].decode()
        page = built[f"models/{entry['id']}.html"].decode()
        for figure in re.findall(r'<img src="([^"]+)"', page):
            assert f"models/{figure}" in built


def test_the_site_uses_no_external_asset(board: Path) -> None:
    built = files(build_site(board))
    for name, content in built.items():
        if name.endswith(".html"):
            refs = re.findall(r'(?:src|href)="([^"]+)"', content.decode())
            assert refs and not [r for r in refs if re.match(r"[a-z]+:|//|/", r)], name


def test_a_hostile_model_name_is_shown_as_text_and_reaches_no_path(board: Path) -> None:
    out = build_site(board)
    built = files(out)
    html = built["index.html"].decode() + "".join(v.decode() for k, v in built.items() if k.startswith("models/") and k.endswith(".html"))
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;/td&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # the index's own sorting script, nothing else
    md = built["leaderboard.md"].decode()
    assert "&lt;script&gt;" in md and "\\| \\*\\*bold\\*\\*" in md and "<script>" not in md
    assert HOSTILE in [e["model"]["name"] for e in json.loads(built["leaderboard.json"])["entries"]]  # data stays data
    assert all(".." not in name and "passwd" not in name for name in built)
    assert sorted(p.name for p in board.iterdir()) == [".claims.json", ".lock", "site", "submissions"]


def test_the_same_board_builds_byte_identical_sites(board: Path, tmp_path: Path) -> None:
    first, second = files(build_site(board, tmp_path / "one")), files(build_site(board, tmp_path / "two"))
    assert first == second and len(first) == 16  # 4 board files, 3 pages, 9 figures (decodability, erasure, robustness each)


def test_a_board_that_does_not_check_builds_nothing_and_keeps_the_old_site(board: Path) -> None:
    before = files(build_site(board))
    entry = next((board / "submissions").glob("*.json"))
    data = json.loads(results_json(entry.read_bytes()))
    data["model"]["name"] = "renamed in place"
    entry.write_text(json.dumps(data))
    with pytest.raises(Refused, match="its content hashes to"):
        build_site(board)
    assert files(board / "site") == before
    assert sorted(p.name for p in board.iterdir()) == [".claims.json", ".lock", "site", "submissions"]  # no staging directory left
