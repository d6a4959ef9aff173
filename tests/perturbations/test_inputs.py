"""Distractor lines: neutral for every latent, deterministic, within the zoo's context."""

from __future__ import annotations

import dataclasses
import random

import pytest

from fracbench.perturbations.inputs import DISTRACTOR_LEVELS, distractor_examples, insert_distractors, states_preserved
from fracbench.tasks import TASKS, Example

TASK_NAMES = TASKS.names()
TOP = len(DISTRACTOR_LEVELS)
ZOO_MAX_CHARS = 319  # n_ctx 320, BOS included


def pairs(name: str, n: int, level: int) -> list[tuple[Example, Example]]:
    task = TASKS[name]
    return list(zip(task.examples("test", n, 0), distractor_examples(task, n, 0, level), strict=True))


def fillers_added(old: str, new: str) -> int:
    """Inserted filler lines: new physical lines, less the ``if ...:`` headers of two-line fillers."""
    old_lines, new_lines = old.split("\n"), new.split("\n")
    headers = sum(line.endswith(":") for line in new_lines) - sum(line.endswith(":") for line in old_lines)
    return len(new_lines) - len(old_lines) - headers


def is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(line in it for line in short)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_latent_keeps_its_character_and_lexer_state(name: str) -> None:
    for old, new in pairs(name, 30, TOP):
        assert {k: [c for _, c in v] for k, v in new.latents.items()} == {k: [c for _, c in v] for k, v in old.latents.items()}
        assert states_preserved(old, new), (old.prompt, new.prompt)


def test_states_preserved_catches_unshifted_latents() -> None:
    old, new = next((o, n) for o, n in pairs("bracket_depth", 30, TOP) if "\n" in o.prompt)
    assert not states_preserved(old, dataclasses.replace(new, latents=old.latents))


@pytest.mark.parametrize("name", TASK_NAMES)
def test_answer_and_cue_are_unchanged(name: str) -> None:
    for old, new in pairs(name, 30, TOP):
        assert (new.target, new.foil, new.cue_agrees) == (old.target, old.foil, old.cue_agrees)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_last_line_stays_last_and_intact(name: str) -> None:
    for old, new in pairs(name, 30, TOP):
        assert new.prompt.endswith("\n" + old.prompt.split("\n")[-1]), (old.prompt, new.prompt)


@pytest.mark.parametrize("level", range(1, TOP + 1))
def test_each_level_inserts_its_number_of_lines(level: int) -> None:
    for name in TASK_NAMES:
        for old, new in pairs(name, 10, level):
            assert is_subsequence(old.prompt.split("\n"), new.prompt.split("\n")), (old.prompt, new.prompt)
            assert fillers_added(old.prompt, new.prompt) == DISTRACTOR_LEVELS[level - 1], (old.prompt, new.prompt)


def test_top_level_prompts_fit_the_zoo_context() -> None:
    longest = {name: max(len(ex.prompt) for ex in distractor_examples(TASKS[name], 200, 0, TOP)) for name in TASK_NAMES}
    assert max(longest.values()) <= ZOO_MAX_CHARS, longest


def test_zero_lines_returns_an_equal_example() -> None:
    ex = TASKS["set_or_string"].examples("test", 1)[0]
    assert insert_distractors(ex, 0, random.Random(0)) == ex


def test_one_line_prompt_gets_its_lines_at_the_start() -> None:
    ex = Example("x = [1, [2", target="]", foil="\n", latents={"depth": ((4, 1), (8, 2))})
    new = insert_distractors(ex, 3, random.Random(0))
    assert new.prompt.endswith("\n" + ex.prompt)
    assert [new.prompt[p] for p, _ in new.latents["depth"]] == ["[", "["]


def test_fillers_take_the_indentation_of_the_next_line() -> None:
    ex = Example("for ch in src:\n    seen", target=".", foil=" ", latents={"var_type": ((19, 0),)})
    for seed in range(10):
        lines = insert_distractors(ex, 6, random.Random(seed)).prompt.split("\n")
        body = lines[lines.index("for ch in src:") + 1 :]
        assert all(line.startswith("    ") for line in body), lines


def test_no_line_goes_inside_an_open_bracket() -> None:
    ex = Example("x = [1,\n     2,\n     3", target="]", foil="\n", latents={"depth": ((4, 1),)})
    for seed in range(10):
        assert insert_distractors(ex, 4, random.Random(seed)).prompt.endswith("\n" + ex.prompt)


def test_same_arguments_give_the_same_examples() -> None:
    task = TASKS["copy_name"]
    assert distractor_examples(task, 20, 3, 2) == distractor_examples(task, 20, 3, 2)
    assert distractor_examples(task, 20, 3, 2) != distractor_examples(task, 20, 4, 2)


@pytest.mark.parametrize("level", [0, TOP + 1])
def test_level_out_of_range_raises_naming_level(level: int) -> None:
    with pytest.raises(ValueError, match="level"):
        distractor_examples(TASKS["bracket_depth"], 4, 0, level)


def test_negative_counts_raise_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="n must"):
        distractor_examples(TASKS["bracket_depth"], -1, 0, 1)
    with pytest.raises(ValueError, match="n_lines"):
        insert_distractors(TASKS["bracket_depth"].examples("test", 1)[0], -1, random.Random(0))


def test_dense_model_survives_one_distractor_line() -> None:
    from fracbench.behaviour import logit_diffs
    from fracbench.models import zoo

    adapter, task = zoo.load("dense"), TASKS["bracket_depth"]
    clean = (logit_diffs(adapter, task, task.examples("test", 64, 0)) > 0).double().mean().item()
    perturbed = (logit_diffs(adapter, task, distractor_examples(task, 64, 0, 1)) > 0).double().mean().item()
    assert perturbed > 0.5, f"dense accuracy on bracket_depth: clean {clean:.3f}, one distractor line {perturbed:.3f}"
