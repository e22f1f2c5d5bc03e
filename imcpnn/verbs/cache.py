"""``imcpnn cache``: what the SPICE result cache holds, and removing what killed or failed runs left."""

from __future__ import annotations

import argparse

SUMMARY = "show the SPICE result cache (size, entries, leftovers) or clean it"

DESCRIPTION = """\
Every ngspice run is cached: a rerun of the same deck with the same models, ngspice and
.spiceinit reads the finished result back instead of simulating (that is how an interrupted
sweep resumes). The cache is $IMCPNN_CACHE, else ~/.cache/imcpnn, or --cache-dir; a relative
path is taken from the current directory. Its layout:

  models/sky130_<corner>_<hash>.spice   minimal model sets (+ .sha256 checksum each)
  runs/<key>/                           finished runs: deck.cir, out.raw, done.json
  runs/<key>.tmp<pid>_<thread>/         a run in progress, or left by a killed process
  runs/<key>.failed/                    the last failure of a deck, kept for inspection

Keys hash the content of the model files (an edited PDK file gives new results), never a path:
a cache can be moved or copied. A damaged entry (truncated raw file, corrupt done.json, damaged
model set) is reported once and simulated again by the next run; nothing needs cleaning for
results to be right. The .tmp folders of killed processes are removed by the next run.

  info    size, finished entries, model sets and leftovers (.tmp folders of processes that no
          longer run, .failed folders, run folders without done.json)
  clean   remove the leftovers; --all removes every run and model set too (the next runs
          simulate again). Only runs/ and models/ are touched, and the folders of runs still
          in progress are kept.

Examples:
  imcpnn cache info
  imcpnn cache info --cache-dir runs/spice_cache
  imcpnn cache clean                  # leftovers of killed and failed runs only
  imcpnn cache clean --all            # empty the cache
"""

_INFO = """\
Print the cache folder, its size on disk, the number of finished runs and model sets, and the
leftovers `imcpnn cache clean` would remove. Reads only; safe while simulations run.

Example:
  imcpnn cache info --cache-dir runs/spice_cache
"""

_CLEAN = """\
Remove the leftovers of killed and failed runs: .tmp folders whose process no longer runs,
.failed folders (the kept inputs and logs of failed decks) and run folders without done.json.
With --all, also every finished run and minimal model set: the next runs simulate again. Only
runs/ and models/ are touched, and the .tmp folders of runs still in progress are kept.

Examples:
  imcpnn cache clean
  imcpnn cache clean --all --cache-dir runs/spice_cache
"""

_CACHE_HELP = "SPICE result cache (default $IMCPNN_CACHE or ~/.cache/imcpnn; relative to the current directory)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    info = sub.add_parser("info", help="size, entries and leftovers of the cache", description=_INFO,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    info.add_argument("--cache-dir", default=None, metavar="DIR", help=_CACHE_HELP)
    clean = sub.add_parser("clean", help="remove leftovers of killed and failed runs (--all: everything)",
                           description=_CLEAN, formatter_class=argparse.RawDescriptionHelpFormatter)
    clean.add_argument("--cache-dir", default=None, metavar="DIR", help=_CACHE_HELP)
    clean.add_argument("--all", action="store_true",
                       help="also remove every finished run and model set (the next runs simulate again)")


def _count(paths, what: str) -> str:
    return f"{len(paths)} {what}"


def run(args: argparse.Namespace) -> int:
    from imcpnn.spice import cache_info, clean_cache
    from imcpnn.spice import human_bytes

    if args.action == "info":
        info = cache_info(args.cache_dir)
        print(f"cache:        {info.root}")
        if not info.exists:
            print("              (does not exist yet: the first SPICE run creates it)")
            return 0
        print(f"size:         {human_bytes(info.size_bytes)}")
        print(f"entries:      {info.entries} finished runs, {info.model_sets} minimal model sets")
        print(f"leftovers:    {len(info.leftovers)} ({human_bytes(info.leftover_bytes)}): "
              f"{_count(info.dead_tmp, '.tmp of dead processes')}, {_count(info.failed, '.failed')}, "
              f"{_count(info.incomplete, 'without done.json')}")
        if info.running_tmp:
            print(f"in progress:  {len(info.running_tmp)} .tmp folders of running processes")
        if info.leftovers:
            print("              remove them with: imcpnn cache clean"
                  + ("" if args.cache_dir is None else f" --cache-dir {args.cache_dir}"))
        return 0
    report = clean_cache(args.cache_dir, everything=args.all)
    what = "runs, model sets and leftovers" if args.all else "leftovers"
    print(f"removed {len(report.removed)} {what} ({human_bytes(report.freed_bytes)}) from {report.root}")
    if report.kept_running:
        print(f"kept {len(report.kept_running)} .tmp folders of runs still in progress")
    return 0
