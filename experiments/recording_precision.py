"""What recording per-item numbers at RECORDED_DIGITS significant digits (schema 11) changes in the scores: each
results file given is scored as written (full precision) and with its per-item numbers recorded, and the largest
change of every score, interval bound and component is printed, with the verdicts that moved and the file's size
as stored and as schema 11 writes it (recorded numbers, compact JSON in xz).

    python experiments/recording_precision.py leaderboard/submissions/*.json [--out experiments/results/recording_precision.json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from fracbench.results import RunResult, encode_results, record_document, results_json
from fracbench.scoring import verdict


def numbers(v) -> dict[str, float]:
    out = {}
    for key in ("D", "C", "F", "G", "cue_reliance"):
        e = getattr(v, key)
        if e is not None:
            out.update({f"{key}.value": e.value, f"{key}.low": e.low, f"{key}.high": e.high})
    out.update({f"components.{k}": x for k, x in v.components.items() if x is not None})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {}
    for path in args.files:
        data = json.loads(results_json(path.read_bytes()))
        full = RunResult.model_validate(data)
        rec = RunResult.model_validate(record_document(data))
        largest, moved = {}, []
        for task in full.tasks:
            a, b = verdict(full, task), verdict(rec, task)
            na, nb = numbers(a), numbers(b)
            for key in na.keys() | nb.keys():
                x, y = na.get(key, math.nan), nb.get(key, math.nan)
                d = abs(x - y) if math.isfinite(x) and math.isfinite(y) else (0.0 if x == y or (math.isnan(x) and math.isnan(y)) else math.inf)
                largest[key] = max(largest.get(key, 0.0), d)
            if a.verdict != b.verdict:
                moved.append(f"{task}: {a.verdict} -> {b.verdict}")
        report[full.model.name] = {"largest_change": dict(sorted(largest.items())), "verdicts_moved": moved,
                                   "bytes_as_stored": path.stat().st_size, "bytes_schema_11": len(encode_results(rec))}
        worst = max(largest.items(), key=lambda kv: kv[1])
        print(f"{full.model.name}: largest change {worst[1]:.2e} ({worst[0]}); verdicts moved: {moved or 'none'}; "
              f"{path.stat().st_size:,} bytes as stored, {report[full.model.name]['bytes_schema_11']:,} as schema 11 writes it", flush=True)
    overall = {}
    for r in report.values():
        for key, d in r["largest_change"].items():
            overall[key] = max(overall.get(key, 0.0), d)
    print(json.dumps(overall, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"per_model": report, "largest_change": overall}, indent=1) + "\n")


if __name__ == "__main__":
    main()
