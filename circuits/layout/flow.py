"""One call from a generated layout to its checked post-layout netlist: DRC, extraction, LVS, PNG.

:func:`run_layout_flow` writes everything to ``out_dir`` (``<cell>.mag``, ``<cell>.png``,
``<cell>_pex.spice``, ``<cell>_lvs.spice``, ``<cell>_schematic.spice``, ``<cell>_layout.json``)
and raises NetlistError, after writing them, when DRC finds errors, LVS mismatches, or the
extraction lost devices or parasitics.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from imcpnn.errors import NetlistError

from imcpnn.circuits.netlist.extracted import ExtractedNetlist, check_extraction, schematic_device_counts
from imcpnn.circuits.layout.cells import Layout, plot_layout, write_mag
from imcpnn.circuits.layout.lvs import LvsResult, run_lvs
from imcpnn.circuits.layout.magic import DrcResult, Extraction, MagicSetup, magic_drc, magic_extract, new_build_dir


@dataclass(frozen=True)
class LayoutReport:
    """Outcome of :func:`run_layout_flow` for one cell."""

    cell: str
    drc: DrcResult
    extraction: Extraction
    netlist: ExtractedNetlist
    expected_devices: dict[str, int]
    lvs: LvsResult
    files: dict[str, Path]

    @property
    def is_clean(self) -> bool:
        """DRC 0 errors, LVS match and extracted device counts equal to the schematic's."""
        return (
            self.drc.n_errors == 0
            and self.lvs.is_match
            and self.netlist.device_counts == self.expected_devices
        )

    def to_dict(self) -> dict:
        """JSON-ready summary (capacitances in F, resistances in ohm)."""
        net = self.netlist
        return {
            "cell": self.cell,
            "drc_errors": self.drc.n_errors,
            "drc_violations": [{"rule": r, "boxes": n} for r, n in self.drc.violations],
            "device_counts": net.device_counts,
            "schematic_device_counts": self.expected_devices,
            "n_parasitic_capacitors": len(net.capacitors),
            "n_parasitic_resistors": len(net.resistors),
            "parasitic_capacitance_total_f": sum(c.value for c in net.capacitors),
            "port_capacitance_f": {p: net.node_capacitance_f(p) for p in net.ports},
            "lvs_match": self.lvs.is_match,
            "lvs_mismatches": list(self.lvs.mismatches),
            "files": {k: str(v) for k, v in self.files.items()},
        }


def run_layout_flow(
    layout: Layout,
    out_dir: Path,
    *,
    use_resistance: bool = False,
    setup: MagicSetup | None = None,
    check: bool = True,
) -> LayoutReport:
    """DRC, extraction (C always, R with ``use_resistance``), LVS vs ``layout.schematic``, PNG.

    Work happens in a fresh build directory under ``out_dir/build``; results are copied to
    ``out_dir``. With ``check`` a dirty result raises NetlistError listing what failed.
    """
    if not layout.schematic:
        raise NetlistError(f"layout {layout.name} carries no schematic to run LVS against")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup = setup or MagicSetup.discover()
    build = new_build_dir(out_dir / "build", prefix=f"{layout.name}-")
    drc = magic_drc(layout, setup=setup, build_dir=build / "drc")
    extraction = magic_extract(layout, use_resistance=use_resistance, setup=setup, build_dir=build / "extract")
    netlist = extraction.parsed()
    schematic = out_dir / f"{layout.name}_schematic.spice"
    schematic.write_text(layout.schematic)
    expected = schematic_device_counts(layout.schematic, layout.name)
    lvs = run_lvs(extraction.lvs_netlist_path, layout.name, schematic, layout.name, build / "lvs")
    files = {
        "mag": write_mag(layout, out_dir),
        "png": plot_layout(layout, out_dir / f"{layout.name}.png"),
        "pex_netlist": Path(shutil.copy(extraction.netlist_path, out_dir)),
        "lvs_netlist": Path(shutil.copy(extraction.lvs_netlist_path, out_dir)),
        "schematic": schematic,
        "lvs_report": Path(shutil.copy(lvs.report_path, out_dir / f"{layout.name}_lvs_report.txt")),
    }
    files["summary"] = out_dir / f"{layout.name}_layout.json"
    report = LayoutReport(layout.name, drc, extraction, netlist, expected, lvs, files)
    files["summary"].write_text(json.dumps(report.to_dict(), indent=2))
    if check:
        drc.raise_if_errors()
        check_extraction(netlist, expected, require_resistors=use_resistance)
        lvs.raise_if_mismatch()
    return report
