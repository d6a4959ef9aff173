"""Finding 4's gaming check: does zeroing the smallest weights of a model, with no retraining, earn it compactness?

Runs the task on the dense zoo model and on its magnitude-pruned twin (`models.twins.magnitude_pruned_twin`) with the
same settings and prints each one's accuracy, circuit size and C's components (docs/metrics.md, "Known answers").

    python experiments/pruning_check.py --task bracket_depth --n 256 --fraction 0.5
"""

from __future__ import annotations

import argparse
import tempfile

from fracbench import runner
from fracbench.models import ModelSpec
from fracbench.models.twins import magnitude_pruned_twin
from fracbench.scoring import model_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="bracket_depth")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load = ModelSpec.load
    for pruned in (False, True):
        if pruned:
            ModelSpec.load = lambda self, device: magnitude_pruned_twin(load(self, device), args.fraction)
        with tempfile.TemporaryDirectory() as out:
            result, _ = runner.run("zoo:dense", tasks=args.task, out_dir=out, n_test=args.n, seed=args.seed, progress=False)
        ModelSpec.load = load
        t, v = result.tasks[args.task], model_scores(result).tasks[args.task]
        parts = {k: round(float(x), 3) for k, x in v.components.items() if x is not None}
        print(f"{'pruned' if pruned else 'dense'}: accuracy {t.behaviour['test'].accuracy:.3f}, nodes {t.circuits.n_nodes}, "
              f"edges {t.circuits.n_edges}, C {v.C.value:.2f} [{v.C.low:.2f}, {v.C.high:.2f}], verdict {v.verdict}, {parts}", flush=True)


if __name__ == "__main__":
    main()
