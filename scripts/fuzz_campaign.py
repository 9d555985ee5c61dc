"""The long fuzzing campaign (docs/fuzzing.md): N seeded cases per input kind, each run as `cosa-edge infer` in a
process of its own, and a summary of how they ended.

    python scripts/fuzz_campaign.py --cases 2000 --seed 25 --out fuzz-findings

Writes ``OUT/summary.json`` (cases tried, outcomes and failures per kind, the distinct error messages users saw,
how long it took) and keeps each failing case's folder (its input file, command line, stdout and stderr) under
``OUT/KIND/``; passing cases are deleted. Every input is made up (phantoms, generated headers): nothing here
comes from a patient. ``--fresh`` runs each case in a new interpreter (``python -m cosa_edge.cli``, about a second
a case) instead of a child forked from one that has imported the CLI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosa_edge.fuzz.cases import KINDS, run_case
from cosa_edge.fuzz.dicom_cases import require_hypothesis
from cosa_edge.fuzz.engine import write_tiny_engine
from cosa_edge.errors import CosaEdgeError
from cosa_edge.fuzz.runner import ForkRunner, Limits


def signature(outcome: str, text: str) -> str:
    """A failure's kind: its outcome and its message with numbers taken out, so that one bug counts once."""
    return f"{outcome}: {re.sub(r'[0-9]+', 'N', text)[:160]}"


def campaign(kind_name: str, cases: int, seed: int, out: Path, engine: Path, runner: ForkRunner | None,
             limits: Limits) -> dict[str, Any]:
    hypothesis = require_hypothesis()
    from hypothesis import HealthCheck, Phase, given, settings

    kind = KINDS[kind_name]
    folder = out / kind_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    outcomes: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    seconds: list[float] = []
    numbers = itertools.count()

    @hypothesis.seed(seed)
    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(recipe=kind.strategy())
    def one(recipe: dict[str, Any]) -> None:
        case = folder / f"case{next(numbers):05d}"
        ended = run_case(kind, recipe, case, out / "scratch", engine, runner, limits)
        outcomes[ended.outcome.value] += 1
        seconds.append(ended.seconds)
        if ended.message:
            messages[signature(ended.outcome.value, ended.message)] += 1
        if ended.acceptable:
            shutil.rmtree(case, ignore_errors=True)
            return
        record = {"case": case.name, "recipe": recipe, **ended.to_json()}
        (case / "case.json").write_text(json.dumps(record, indent=1) + "\n")
        failures.append(record)

    started = time.perf_counter()
    one()
    failing = Counter(signature(f["outcome"], f["message"] if f["outcome"] != "result" else "; ".join(f["violations"]))
                      for f in failures)
    return {"cases": sum(outcomes.values()), "outcomes": dict(outcomes), "failures": len(failures),
            "distinct_failures": dict(failing), "messages": dict(messages.most_common()),
            "seconds": round(time.perf_counter() - started, 1),
            "median_case_s": round(sorted(seconds)[len(seconds) // 2], 3) if seconds else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="cases per input kind")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, from {', '.join(KINDS)}")
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a case may run")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address space a case may use")
    parser.add_argument("--fresh", action="store_true", help="a new interpreter per case (slow), not a fork")
    args = parser.parse_args()
    kinds = [name.strip() for name in args.kinds.split(",") if name.strip()]
    unknown = [name for name in kinds if name not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scratch").mkdir(exist_ok=True)
    engine = write_tiny_engine(args.out / "scratch" / "engine.onnx")
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
    summary: dict[str, Any] = {"command": " ".join(["python", "scripts/fuzz_campaign.py", *sys.argv[1:]]),
                               "seed": args.seed, "limits": {"timeout_s": args.timeout, "memory_mb": args.memory_mb},
                               "runner": "fresh interpreter" if args.fresh else "forked", "kinds": {}}
    runner = None if args.fresh else ForkRunner(limits)
    try:
        for name in kinds:
            result = campaign(name, args.cases, args.seed, args.out, engine, runner, limits)
            summary["kinds"][name] = result
            print(f"{name}: {result['cases']} cases in {result['seconds']} s, {result['outcomes']}, "
                  f"{result['failures']} failing ({len(result['distinct_failures'])} distinct)", flush=True)
            for text, count in result["distinct_failures"].items():
                print(f"    {count} x {text}", flush=True)
            (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    finally:
        if runner is not None:
            runner.close()
    print(f"summary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    try:
        main()
    except CosaEdgeError as error:  # a missing dependency or engine extra: one line, as the CLI says it
        raise SystemExit(f"error: {error}") from None
