"""The lexer every latent label comes from."""

from __future__ import annotations

import pytest

from fracbench.tasks.code import scan


def test_brackets_count_outside_strings_and_comments_only() -> None:
    text = "# [\nx = ['a]', [1]"
    depth = [s.depth for s in scan(text)]
    assert depth[text.index("#") + 2] == 0  # the comment's '['
    assert depth[text.index("a")] == 1  # inside the string, one list open
    assert depth[text.index("]'")] == 1  # the ']' inside the string does not close it
    assert depth[-1] == 1 and depth[-2] == 2


def test_string_state_is_the_state_after_reading_each_character() -> None:
    states = scan("x = \"a'b\"")
    assert [s.in_string for s in states] == [False] * 4 + [True] * 4 + [False]
    assert {s.quote for s in states if s.in_string} == {'"'}  # the other quote inside does not close it


def test_innermost_container_is_tracked() -> None:
    text = "{'k': [1, {'j'"
    containers = [s.container for s in scan(text)]
    assert containers[text.index("[")] == "[" and containers[-1] == "{"


def test_unterminated_strings_at_a_newline_are_refused() -> None:
    with pytest.raises(ValueError, match="unterminated string"):
        scan("x = 'ab\ny")
