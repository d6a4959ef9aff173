"""Property-based: malformed, mutated and hostile documents never crash the validator, are never accepted,
and each gets at least one message naming where the problem is (over 1,000 documents in all)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from fracbench.leaderboard import validate_submission
from fracbench.leaderboard.validate import BOARD_SCHEMA_VERSIONS

EXAMPLES = 300  # per property below: 4 x 300 = 1,200 documents
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
WRONG_TYPES = ("\x00not a value", ["\x00"], {"\x00": None}, -(10**30), True, 0.5)  # one of these is wrong for every field
WRONG_FOR_ANY_OPTIONAL = (["\x00"], {"\x00": None})  # where None is stored, a number or a string may be the field's other type


def refused_with_messages(raw: bytes) -> None:
    validation = validate_submission(raw)
    assert not validation.accepted
    assert validation.problems and all(p.field and p.message for p in validation.problems)


def leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a non-container value, and to every container, in a JSON document."""
    out = [path] if path else []
    if isinstance(node, dict):
        out += [p for k, v in node.items() for p in leaves(v, (*path, k))]
    elif isinstance(node, list):
        out += [p for i, v in enumerate(node) for p in leaves(v, (*path, i))]
    return out


def at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def put(doc: Any, path: tuple, value: Any) -> None:
    at(doc, path[:-1])[path[-1]] = value


@pytest.fixture(scope="module")
def base(tiny_results: dict[str, bytes]) -> dict:
    return json.loads(tiny_results["partial"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_with_a_message(raw: bytes) -> None:
    refused_with_messages(raw)


@FUZZ
@given(value=json_values)
def test_arbitrary_json_is_refused_with_a_message(value: Any) -> None:
    refused_with_messages(json.dumps(value).encode())


@FUZZ
@given(data=st.data())
def test_a_valid_document_with_one_value_of_the_wrong_type_is_refused(base: dict, data: st.DataObject) -> None:
    doc = json.loads(json.dumps(base))
    path = data.draw(st.sampled_from(leaves(doc)))
    current = at(doc, path)
    candidates = WRONG_FOR_ANY_OPTIONAL if current is None else WRONG_TYPES
    wrong = data.draw(st.sampled_from([w for w in candidates if type(w) is not type(current) and not _numeric_swap(current, w)]))
    put(doc, path, wrong)
    note(f"{path}: {current!r} -> {wrong!r}")
    refused_with_messages(json.dumps(doc).encode())


def _numeric_swap(current: Any, wrong: Any) -> bool:
    """An int where a float is stored (or the reverse) is the same number to JSON, not a wrong type."""
    numbers = (int, float)
    return isinstance(current, numbers) and isinstance(wrong, numbers) and not isinstance(current, bool) and not isinstance(wrong, bool)


@FUZZ
@given(data=st.data())
def test_tampered_hostile_or_truncated_documents_are_refused(base: dict, data: st.DataObject) -> None:
    doc = json.loads(json.dumps(base))
    kind = data.draw(st.sampled_from(["tamper a score", "non-finite", "truncate", "version", "unknown task", "unknown field"]))
    if kind == "tamper a score":
        scores = [p for p in leaves(doc) if "scores" in p and isinstance(at(doc, p), float)]
        path = data.draw(st.sampled_from(scores))
        put(doc, path, at(doc, path) + data.draw(st.sampled_from([-1, 1])) * data.draw(st.floats(1e-5, 10)))
    elif kind == "non-finite":
        numbers = [p for p in leaves(doc) if isinstance(at(doc, p), (int, float)) and not isinstance(at(doc, p), bool)]
        put(doc, data.draw(st.sampled_from(numbers)), data.draw(st.sampled_from([float("nan"), float("inf"), -float("inf")])))
    elif kind == "truncate":
        raw = json.dumps(doc).encode()
        refused_with_messages(raw[: data.draw(st.integers(0, len(raw) - 1))])
        return
    elif kind == "version":
        field = data.draw(st.sampled_from(["schema_version", "suite_version"]))
        taken = BOARD_SCHEMA_VERSIONS if field == "schema_version" else (doc[field],)
        doc[field] = data.draw(st.text(max_size=8).filter(lambda v: v not in taken))
    elif kind == "unknown task":
        name = data.draw(st.text(min_size=1, max_size=30).filter(lambda n: n not in doc["tasks"]))
        doc["tasks"][name] = doc["tasks"].pop(next(iter(doc["tasks"])))
    else:
        containers = [p for p in leaves(doc) if isinstance(at(doc, p), dict) and p[-1] not in _FREE_KEYS]
        put(doc, (*data.draw(st.sampled_from(containers)), "\x00injected"), data.draw(json_values))
    refused_with_messages(json.dumps(doc).encode())


_FREE_KEYS = ("tasks", "n_examples", "behaviour", "latents", "sites", "transfer", "ood", "seeds", "timings", "specificity",
              "node_sites", "components", "sparsity")  # mappings whose keys are names, not fields: checked by other properties
