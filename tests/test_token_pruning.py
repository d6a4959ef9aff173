"""Token pruning: greedy removal keeps half the logit difference, never removes special tokens or the last token, and
is scored against each task's evidence characters beside chance."""

from __future__ import annotations

import pytest
import torch

from fracbench.config import RunConfig
from fracbench.results import PrunedPrompt, TaskResult, TokenPruning
from fracbench.scoring import token_pruning_scores
from fracbench.tasks import TASKS, get_task
from fracbench.evaluate.token_pruning import TOKEN_KEEP_SHARE, prune_prompt


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_names_the_characters_that_carry_its_answer(name: str) -> None:
    task = get_task(name)
    for split in ["test", *(s.name for s in task.splits() if s.is_ood)]:
        for example in task.examples(split, 40, 0):
            evidence = task.evidence(example)
            assert evidence and all(0 <= p < len(example.prompt) for p in evidence), (split, example.prompt)
    example = task.examples("test", 1, 0)[0]
    kinds = {"quote_close": "'\"", "bracket_depth": "[]", "string_list_depth": "[]", "dict_or_list": "[{"}
    if name in kinds:
        assert all(example.prompt[p] in kinds[name] for p in task.evidence(example))


def test_pruning_keeps_half_the_logit_difference_and_never_the_special_or_last_token(monkeypatch, tiny_adapter) -> None:
    import fracbench.evaluate.token_pruning as tp

    task = get_task("quote_close")
    example = next(ex for ex in task.examples("test", 50, 0) if ex.target == "'" and ex.prompt.count("'") == 1)
    opener = example.prompt.index("'") + 1  # its token: BOS is token 0

    def diffs(adapter, ids, offsets, target, foil):  # +4 with the opener's token present, +1 without
        return torch.tensor([4.0 if bool((row == ids_full[opener]).any()) else 1.0 for row in ids], dtype=torch.float64)

    ids_full = tiny_adapter.encode([example.prompt]).ids[0]
    monkeypatch.setattr(tp, "_last_diffs", diffs)
    pruned = prune_prompt(tiny_adapter, task, example)
    assert pruned.kept == [opener - 1] and pruned.evidence == [opener - 1]  # the opener alone: half of 4 is 2 > 1
    assert pruned.full == 4.0 and pruned.pruned == 4.0 and pruned.n_chars == len(example.prompt) - 1
    assert TOKEN_KEEP_SHARE == 0.5


def test_a_wrong_answer_is_not_pruned(monkeypatch, tiny_adapter) -> None:
    import fracbench.evaluate.token_pruning as tp

    monkeypatch.setattr(tp, "_last_diffs", lambda *a: torch.tensor([-1.0], dtype=torch.float64))
    assert prune_prompt(tiny_adapter, get_task("quote_close"), get_task("quote_close").examples("test", 1, 0)[0]) is None


def test_scores_are_means_over_prompts_beside_chance() -> None:
    prompts = [PrunedPrompt(kept=[0, 1], evidence=[1], n_chars=10, full=2.0, pruned=1.5),
               PrunedPrompt(kept=[], evidence=[3, 4], n_chars=5, full=1.0, pruned=0.6)]
    t = TaskResult.model_construct(token_pruning=TokenPruning(keep_share=0.5, prompts=prompts))
    s = token_pruning_scores(t, n_bootstrap=50)
    assert s["precision"].value == pytest.approx(0.5)  # the second prompt kept nothing: no precision to average
    assert s["recall"].value == pytest.approx(0.5) and s["chance_precision"].value == pytest.approx((0.1 + 0.4) / 2)
    assert s["kept_share"].value == pytest.approx(0.1)


def test_a_pruned_prompt_keeps_no_more_characters_than_it_had() -> None:
    with pytest.raises(ValueError, match="kept holds 3 characters of 2"):
        PrunedPrompt(kept=[0, 1, 2], evidence=[1], n_chars=2, full=1.0, pruned=1.0)


def test_a_task_that_names_no_evidence_is_measured_without_token_pruning(monkeypatch, tiny_adapter) -> None:
    """A user's task need not say which characters carry its answer: the run keeps its probes and leaves token pruning
    out instead of failing."""
    from fracbench.evaluate import measure_task

    task = get_task("quote_close")
    monkeypatch.setattr(type(task), "evidence", lambda self, example: None)
    result, _ = measure_task(tiny_adapter, task, RunConfig(n_test=8, seed=0, n_train=16, circuits=False))
    assert result.token_pruning is None and result.probes is not None
