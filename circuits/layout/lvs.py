"""LVS with netgen: extracted (layout) netlist vs schematic netlist, result parsed.

No sky130 netgen setup file is required (a PDK may hold only the magic tech file). Without one netgen treats the sky130
models as black-box subcircuits and compares connectivity pin by pin, which is what we need; the
minimal setup written here (:func:`netgen_setup_text`) adds, per MOSFET model, source/drain
permutation (pins 1 and 3) and property rules: W and L compared at 1 % tolerance, layout-only
properties (``ad as pd ps``) and schematic-only ones (``nf mult``) deleted. Both netlists must
give W/L in the same unit: :func:`imcpnn.circuits.layout.magic.magic_extract` writes the LVS netlist in
the um of ``netlists/*.spice``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from imcpnn.errors import NetlistError
from imcpnn.spice import run_captured

from imcpnn.circuits.netlist.extracted import MIM_MODELS
from imcpnn.circuits.layout.cells import MOSFET_TYPES
from imcpnn.circuits.layout.magic import find_netgen, tcl_quote

_SETUP = """# imcpnn minimal netgen setup for sky130 black-box device models
# (placeholder cells are not listed by `cells list`; catch skips models a netlist lacks)
foreach model {{{models}}} {{
    foreach c {{1 2}} {{
        catch {{permute "-circuit$c $model" 1 3}}
        catch {{property "-circuit$c $model" delete ad as pd ps nf mult}}
        catch {{property "-circuit$c $model" tolerance {{w 0.01}} {{l 0.01}}}}
    }}
}}
"""


def netgen_setup_text(models: tuple[str, ...] = (*MOSFET_TYPES, *sorted(MIM_MODELS))) -> str:
    """Tcl setup for netgen: S/D permutation and W/L property checks for ``models``."""
    return _SETUP.format(models=" ".join(models))


@dataclass(frozen=True)
class LvsResult:
    """netgen's verdict: ``is_match`` (topology and W/L), first mismatch lines, report path."""

    is_match: bool
    mismatches: tuple[str, ...]
    report_path: Path

    def raise_if_mismatch(self) -> None:
        if not self.is_match:
            raise NetlistError(
                "LVS mismatch (netgen report " + str(self.report_path) + "):\n  "
                + "\n  ".join(self.mismatches)
            )


def parse_lvs_report(report: str) -> tuple[bool, tuple[str, ...]]:
    """(match, first mismatch lines) from a netgen ``lvs`` report.

    Match means "Circuits match uniquely" (or "Netlists match uniquely") and no property errors.
    """
    matched = bool(re.search(r"(Circuits|Netlists) match uniquely", report))
    property_errors = "Property errors were found" in report or "There were property errors" in report
    interesting = re.compile(r"MISMATCH|do not match|\(no matching|Property errors|delta=|has no match", re.I)
    lines = tuple(line.rstrip() for line in report.splitlines() if interesting.search(line))[:20]
    return matched and not property_errors, lines


def run_lvs(
    layout_netlist: Path,
    layout_cell: str,
    schematic_netlist: Path,
    schematic_cell: str,
    build_dir: Path,
    *,
    timeout_s: float = 120.0,
) -> LvsResult:
    """``netgen -batch lvs "<layout> <cell>" "<schematic> <cell>" setup report`` in ``build_dir``.

    netgen ``eval``s its command line as Tcl and splits each "<file> <cell>" argument as a Tcl
    list, so a path with a space, ``[``, ``$``... is not passed through: both netlists are
    copied into ``build_dir`` (``lvs_layout.spice``, ``lvs_schematic.spice``, kept beside the
    report) and every file is named relative to it.
    """
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    setup = build_dir / "netgen_setup.tcl"
    setup.write_text(netgen_setup_text())
    report = build_dir / "lvs_report.txt"
    report.unlink(missing_ok=True)
    inputs = []
    for source, name, cell in ((layout_netlist, "lvs_layout.spice", layout_cell),
                               (schematic_netlist, "lvs_schematic.spice", schematic_cell)):
        copy = build_dir / name
        if not Path(source).exists():
            copy.unlink(missing_ok=True)  # netgen then reports the missing file, not a stale copy
        elif Path(source).resolve() != copy.resolve():
            shutil.copyfile(source, copy)
        inputs.append(f"{tcl_quote(name)} {tcl_quote(cell)}")
    cmd = [str(find_netgen()), "-batch", "lvs", *inputs, setup.name, report.name]
    try:
        proc = run_captured(cmd, cwd=build_dir, timeout_s=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise NetlistError(f"netgen ran longer than {timeout_s:g} s in {build_dir}") from err
    (build_dir / "netgen.log").write_text(proc.stdout + proc.stderr)
    if not report.exists():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
        raise NetlistError(f"netgen wrote no report (exit code {proc.returncode}):\n{tail}")
    is_match, lines = parse_lvs_report(report.read_text())
    return LvsResult(is_match, lines, report)
