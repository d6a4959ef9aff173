"""Every registered task passes the conformance checks; example 0 of each is pinned."""

from __future__ import annotations

import pytest

from fracbench.tasks import TASKS, get_task, resolve_tasks
from fracbench.tasks.base import in_test_split
from fracbench.tasks.check import check_task

# Example 0 of each task's test split at seed 0. Changing what a seed produces must
# bump the task's version; update the pin together with the version.
GOLDEN = {
    "quote_close": ("2", "pairs = 'wunmokdk", "'", '"'),
    "bracket_depth": ("2", "found = [[5, 9]", "]", "\n"),
    "set_or_string": ("3", "ids = set()\ncount = max(count, k)\nidx = n - 1\nif ok:\n    ids", ".", " "),
    "dict_or_list": ("2", "items = {'q': {'bnf': 'law', 'ya'", ":", ","),
    "string_list_depth": ("2", "line = [\"xq\", ['d]']]", "\n", "]"),
    "copy_name": ("2", "awgm = 9\nxuuli = 5\nj = i * 4\nk += 4\nprint(awg", "m", "l"),
}


@pytest.mark.parametrize("name", TASKS.names())
def test_task_conforms(name: str) -> None:
    check_task(TASKS[name])


@pytest.mark.parametrize("name", TASKS.names())
def test_example_zero_is_pinned(name: str) -> None:
    task = TASKS[name]
    ex = task.examples("test", 1, seed=0)[0]
    assert name in GOLDEN, f"pin example 0 of {name}: {(task.version, ex.prompt, ex.target, ex.foil)!r}"
    assert (task.version, ex.prompt, ex.target, ex.foil) == GOLDEN[name]


def test_set_or_string_labels_var_type_only_where_the_prefix_determines_it() -> None:
    """v2: at a definition's name the binding has not been read yet (only the spurious name cue tells the type),
    and part of a name may begin several; so var_type is labelled at the last character of each later use.
    The prompts are v1's (prompts_version), so the zoo's training corpus did not change."""
    task = get_task("set_or_string")
    ex = task.examples("test", 1, seed=0)[0]
    assert ex.prompt.endswith("    ids") and ex.latents["var_type"] == ((len(ex.prompt) - 1, 0),)
    for ex in task.examples("ood/several_variables/3", 50, seed=0):
        for position, _ in ex.latents["var_type"]:
            name_end = ex.prompt[: position + 1]
            assert ex.prompt[position + 1 : position + 2] in ("", "\n", " ", ".", ")", ",", ":")
            assert name_end.count(name_end.split()[-1].split("(")[-1] + " = ") == 1  # its definition is in the prefix


def test_example_i_does_not_depend_on_how_many_are_drawn() -> None:
    task = get_task("bracket_depth")
    assert task.examples("ood/deeper/2", 5, seed=3) == task.examples("ood/deeper/2", 20, seed=3)[:5]


def test_unknown_task_suggests_the_closest_name() -> None:
    with pytest.raises(KeyError, match="did you mean 'quote_close'"):
        get_task("qoute_close")


def test_resolve_all_and_lists() -> None:
    assert [t.name for t in resolve_tasks("all")] == TASKS.names()
    assert [t.name for t in resolve_tasks("copy_name, quote_close")] == ["copy_name", "quote_close"]
    with pytest.raises(ValueError, match="no task named"):
        resolve_tasks(" , ")


def test_bad_split_names_are_explained() -> None:
    task = get_task("quote_close")
    with pytest.raises(ValueError, match="neither 'train', 'test'"):
        task.examples("validation", 1)
    with pytest.raises(KeyError, match="did you mean 'long_body'"):
        task.examples("ood/long_bdy/1", 1)
    with pytest.raises(ValueError, match="levels 1..3"):
        task.examples("ood/long_body/4", 1)


def test_the_cue_is_random_on_every_split_but_the_cue_splits() -> None:
    """Probes, behaviour and OOD axes see the cue at random (each OOD axis measures its own shift); the two cue
    splits force it, on test prompts, so that their accuracy difference is the model's cue reliance."""
    task = get_task("set_or_string")
    for split in ("train", "test", "ood/distance/1"):
        share = sum(ex.cue_agrees for ex in task.examples(split, 2000)) / 2000
        assert 0.45 < share < 0.55, split
    assert all(ex.cue_agrees for ex in task.examples("cue_agree", 100))
    assert not any(ex.cue_agrees for ex in task.examples("cue_flip", 100))
    assert all(in_test_split(ex.prompt) for ex in task.examples("cue_flip", 100))
    assert task.examples("test", 50) == task.examples("test", 50, cue="random")


def test_the_zoo_corpus_draws_are_those_of_suite_0_2() -> None:
    """The cue splits changed which cue a split takes by default, not the draws of a given split and cue
    (prompts_version): the zoo's checkpoints were trained on exactly these prompts."""
    assert get_task("copy_name").examples("train", 1, cue="random")[0].prompt == "sjfhen = 2\ntwvqb = 5\nstep = max(step, j)\nprint(twv"
    assert get_task("bracket_depth").examples("train", 1, cue="agree")[0].prompt == "n = count + 9\nkeys = [1, 6, 3]"
