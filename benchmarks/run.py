"""Run lightflow's ratio benchmarks, print a table and write JSON.

    python -m benchmarks.run                 # all benchmarks
    python -m benchmarks.run overhead --quick --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

from ._common import Result

BENCHMARKS = {
    "overhead": "benchmarks.bench_overhead",
    "pool": "benchmarks.bench_pool",
    "previews": "benchmarks.bench_previews",
    "control": "benchmarks.bench_control",
    "lora": "benchmarks.bench_lora",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"some of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--json", default="benchmarks/results.json")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    results: list[Result] = []
    for name in args.names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        if not hasattr(module, "run"):
            continue
        started = time.perf_counter()
        try:
            rows = module.run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not lose the others' results
            rows = [Result(name, "error", float("nan"), "runs", False,
                           {"error": f"{type(exc).__name__}: {exc}"})]
        for row in rows:
            row.details["benchmark_seconds"] = round(time.perf_counter() - started, 1)
        results.extend(rows)
    width = max((len(r.name) for r in results), default=10)
    print(f"{'benchmark':{width}}  {'metric':32}  {'value':>10}  {'goal':>10}  ok")
    for r in results:
        print(f"{r.name:{width}}  {r.metric:32}  {r.value:10.4g}  {r.goal:>10}  "
              f"{'yes' if r.passed else 'NO'}")
    out = {"python": sys.version.split()[0], "torch": torch.__version__,
           "machine": platform.machine(), "threads": torch.get_num_threads(),
           "quick": args.quick, "results": [r.to_dict() for r in results]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
