"""Long run of the "never an internal error" property (issue 16, deliverable 4).

The suite (tests/test_render_property.py) runs 300 fixed examples. This runs many more with a
fresh seed each time and prints every problem with its input:

    python benchmarks/render_fuzz.py --examples 5000 [--seed N]

A problem is a ``kslab render`` or ``kslab trace`` that exits 1 (internal error) or exits 2
without exactly one ``kslab: error:`` line. The exit status is the number of problems (capped at
100). The ratio printed is examples per second, and the share of examples that rendered and were
traced (so a run that only ever hits input errors is visible).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from render_property_cases import examples, run_example  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: a random one, printed)")
    args = ap.parse_args(argv)
    run_seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"render_fuzz: {args.examples} examples, seed {run_seed}", file=sys.stderr)
    seen: Counter = Counter()
    problems: list[str] = []
    t0 = time.perf_counter()

    @seed(run_seed)
    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(examples())
    def check(example):
        result = run_example(example)
        codes = [o.code for o in result.outcomes]
        seen["examples"] += 1
        seen["rendered"] += codes[0] == 0
        seen["traced"] += codes[0] == 0 and len(codes) > 1 and codes[-1] == 0
        for p in result.problems():
            problems.append(p + "\n--- input ---\n" + example.describe())
        if seen["examples"] % 250 == 0:
            print(f"  {seen['examples']}/{args.examples} examples, {len(problems)} problems", file=sys.stderr)

    check()
    dt = time.perf_counter() - t0
    for p in problems[:20]:
        print(p, "\n")
    n = max(seen["examples"], 1)
    print(f"examples: {seen['examples']} in {dt:.1f} s ({seen['examples'] / dt:.1f}/s); "
          f"rendered {seen['rendered'] / n:.2f}, traced {seen['traced'] / n:.2f}; problems: {len(problems)}")
    return min(len(problems), 100)


if __name__ == "__main__":
    sys.exit(main())
