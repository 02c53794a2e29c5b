"""`python -m hala_exp.cache list|prune`: the stage cache's entries, their sizes and the runs that use them.

    python -m hala_exp.cache list                       # every entry: kind, fingerprint, size, runs using it
    python -m hala_exp.cache prune                      # dry run: what no run under outputs/ uses
    python -m hala_exp.cache prune --yes                # delete it
    python -m hala_exp.cache prune --older-than 30 --yes  # runs started over 30 days ago no longer keep entries

Runs are the ``summary.json`` files under ``<output dir>/runs`` and ``<output dir>/multirun``; delete a run's
directory (or use ``--older-than``) to stop it keeping its entries. Unfinished entries touched within
``--grace-hours`` or locked by a live job are never pruned. A running job's summary names only the stages it
has reached: prune when no job is running.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from hala_exp.core import housekeeping as hk


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hala_exp.cache", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["list", "prune"])
    parser.add_argument(
        "--output-dir", type=Path, default=Path(os.environ.get("HALA_OUTPUT_DIR", "outputs")), help="paths.output_dir"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="paths.cache_dir (default: <output dir>/cache)")
    parser.add_argument(
        "--older-than", type=float, default=None, metavar="DAYS", help="runs older than this keep nothing"
    )
    parser.add_argument(
        "--grace-hours", type=float, default=24.0, help="never prune unfinished entries younger than this"
    )
    parser.add_argument("--yes", action="store_true", help="prune: delete (default: only show what would go)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    cache_dir = args.cache_dir or args.output_dir / "cache"
    if not cache_dir.is_dir():
        print(f"no cache at {cache_dir}", file=sys.stderr)
        return 2
    entries = hk.scan_cache(cache_dir)
    runs = hk.find_runs(args.output_dir)
    if args.older_than is not None:
        cutoff = time.time() - args.older_than * 86400
        runs = [r for r in runs if (r / "summary.json").stat().st_mtime >= cutoff]
    hk.attribute(entries, runs)
    if args.command == "list":
        print(f"{'kind':<10} {'fingerprint':<16} {'size':>10}  {'state':<10} runs")
        for e in sorted(entries.values(), key=lambda e: (e.kind, e.fingerprint)):
            state = "complete" if e.complete else "unfinished"
            used = ", ".join(Path(r).name for r in e.runs[:3]) + (f" (+{len(e.runs) - 3})" if len(e.runs) > 3 else "")
            print(f"{e.kind:<10} {e.fingerprint:<16} {hk.human(e.size):>10}  {state:<10} {used or '-'}")
        total = sum(e.size for e in entries.values())
        print(f"{len(entries)} entries, {hk.human(total)}; {len(runs)} runs under {args.output_dir}")
        return 0
    doomed = hk.prunable(entries, args.grace_hours * 3600)
    for e in doomed:
        print(f"{'delete' if args.yes else 'would delete'} {e.kind}/{e.fingerprint} ({hk.human(e.size)})")
        if args.yes:
            hk.delete(e)
    freed = sum(e.size for e in doomed)
    verb = "freed" if args.yes else "would free (add --yes to delete)"
    print(f"{len(doomed)} of {len(entries)} entries unused by {len(runs)} runs: {verb} {hk.human(freed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
