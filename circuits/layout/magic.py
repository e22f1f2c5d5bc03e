"""magic and netgen as batch tools: discovery, a tech file magic 8.3.105 can load, DRC, extraction.

Each run gets its own build directory (the caller's, or a fresh one under the system temp folder);
magic's log is kept there as ``magic.log`` and quoted in errors. Scripts name files relative to
it and quote every word they interpolate (:func:`tcl_quote`), so a build or output folder may hold
spaces or Tcl's ``[ ] $ { } \\``. magic and netgen run in their own process group and stop with
the caller (timeout, Ctrl-C, SIGTERM via the CLI): :func:`imcpnn.spice.run_captured`.

Tool workarounds (magic 8.3.105 as packaged by Debian 12, open_pdks ``sky130A.tech``), each
applied where named:

- The tech file ``requires magic-8.3.111`` (8.3.105 refuses it, then crashes) and defines more
  device types than this build holds: runs use a copy with the running version and only
  :data:`KEPT_DEVICE_MODELS` (:func:`trim_tech_text`).
- ``ext2spice lvs`` loses every capacitance to a named substrate net, whatever the order of
  ``cthresh``: ``_EXTRACT_SCRIPT`` writes the parasitic netlist before switching to ``lvs``.
- The flat parasitic netlist has wrong MOSFET ``ad/as/pd/ps``: they are taken from the LVS
  netlist (:func:`imcpnn.circuits.netlist.extracted.take_junction_params`).
- Flat ``ext2spice -o`` segfaults on some larger cells (the neuron): :func:`magic_extract`
  retries with ``hierarchy on``.
- Node-to-substrate capacitances come out dropped (hierarchical) or too small (flat): they are
  replaced by the ``.ext`` node records (:func:`restore_substrate_caps`).
- ``extresist`` (R extraction) stops at the MiM's ``s`` line (:func:`sim_for_extresist`), misses
  start points rounded off the wires (:func:`nodes_for_extresist`), sometimes walks into a
  neighbouring net depending on pointer order (run without address-space randomisation; such nets
  stay lumped, listed in ``<cell>.res.dropped``: :func:`drop_broken_res_nets`) and writes MOSFET
  bodies as ``"error"`` (:func:`fix_res_ext_substrate`).
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imcpnn.errors import NetlistError, ToolNotFoundError
from imcpnn.spice import run_captured

from imcpnn.circuits.layout.cells import Layout, write_mag

#: Path of the magic tech file below ``PDK_ROOT``.
TECH_SUBPATH = Path("sky130A/libs.tech/magic/sky130A.tech")

#: Device models whose ``device`` statements the trimmed tech file keeps.
KEPT_DEVICE_MODELS = frozenset(
    {
        "sky130_fd_pr__nfet_01v8",
        "sky130_fd_pr__nfet_01v8_lvt",
        "sky130_fd_pr__pfet_01v8",
        "sky130_fd_pr__pfet_01v8_lvt",
        "sky130_fd_pr__pfet_01v8_hvt",
        "sky130_fd_pr__cap_mim_m3_1",
        "sky130_fd_pr__cap_mim_m3_2",
    }
    | {f"sky130_fd_pr__res_generic_{x}" for x in ("po", "l1", "m1", "m2", "m3", "m4", "m5")}
)

_INSTALL_HINT = "install it with `apt-get install {pkg}` (Debian/Ubuntu package {pkg})"


_TCL_PLAIN = re.compile(r"[A-Za-z0-9_./:+,=@%^-]+")
_TCL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\v": "\\v", "\f": "\\f"}


def tcl_quote(text: str) -> str:
    """``text`` as one Tcl word (and one Tcl list element) that stands for exactly ``text``.

    Plain words stay as they are; others are brace-quoted (no substitution inside braces), or,
    when they hold a brace or a backslash, backslash-escaped character by character. So a path
    may hold spaces, ``[ ] $ ; " { } \\`` and line breaks: ``a b[c]$d`` -> ``{a b[c]$d}``.
    """
    if _TCL_PLAIN.fullmatch(text):
        return text
    if not any(c in text for c in "{}\\\n\r"):
        return "{" + text + "}"
    return "".join(_TCL_ESCAPES.get(c) or (c if c.isalnum() else "\\" + c) for c in text)


def find_tool(name: str, package: str) -> Path:
    """Absolute path of executable ``name`` on PATH; ToolNotFoundError naming its package if absent."""
    found = shutil.which(name)
    if found is None:
        raise ToolNotFoundError(
            f"{name} not found on PATH; it is needed for layout DRC/extraction/LVS: "
            + _INSTALL_HINT.format(pkg=package)
        )
    return Path(found)


def find_magic() -> Path:
    """The ``magic`` executable (Debian package ``magic``)."""
    return find_tool("magic", "magic")


def find_netgen() -> Path:
    """The netgen LVS executable: ``netgen-lvs`` (Debian package ``netgen-lvs``), else ``netgen``
    (the name of a source/open_pdks install; Debian's own ``netgen`` package is a mesher)."""
    for name in ("netgen-lvs", "netgen"):
        if shutil.which(name):
            return Path(shutil.which(name))
    return find_tool("netgen-lvs", "netgen-lvs")


def find_tech_file(pdk_root: Path | str | None = None) -> Path:
    """``<PDK_ROOT>/sky130A/libs.tech/magic/sky130A.tech``, PDK_ROOT from the argument or environment.

    Raises ToolNotFoundError when PDK_ROOT is unset or the file is not below it.
    """
    root = pdk_root if pdk_root is not None else os.environ.get("PDK_ROOT")
    if not root:
        raise ToolNotFoundError(
            "PDK_ROOT is not set: point it at an open_pdks install holding "
            f"{TECH_SUBPATH} (e.g. `export PDK_ROOT=$HOME/.ciel` after `ciel enable`, or "
            "$HOME/.volare after `volare enable`)"
        )
    tech = Path(root).expanduser() / TECH_SUBPATH
    if not tech.is_file():
        raise ToolNotFoundError(
            f"magic tech file {tech} not found: PDK_ROOT={root} must be an open_pdks install "
            f"containing {TECH_SUBPATH} (install one with `volare enable` or `ciel enable`)"
        )
    return tech


def magic_version(magic: Path) -> str:
    """``8.3.105``-style version of the magic executable (from ``magic --version``)."""
    out = run_captured([str(magic), "--version"], timeout_s=30)
    match = re.search(r"(\d+\.\d+\.\d+)", out.stdout + out.stderr)
    if match is None:
        raise ToolNotFoundError(f"{magic} --version printed no version: {out.stdout!r}{out.stderr!r}")
    return match.group(1)


def trim_tech_text(text: str, version: str) -> str:
    """The tech file text made loadable by magic ``version``.

    Sets the ``requires magic-X`` line to ``version`` and drops every ``device`` statement (with
    its ``\\``-continued lines) whose model is not in :data:`KEPT_DEVICE_MODELS`.
    """
    text = re.sub(r"^(\s*requires\s+magic-)[\d.]+", rf"\g<1>{version}", text, count=1, flags=re.M)
    out: list[str] = []
    dropping = False
    for line in text.splitlines():
        if dropping:
            dropping = line.rstrip().endswith("\\")
            continue
        words = line.split()
        if len(words) >= 3 and words[0] == "device" and words[2] not in KEPT_DEVICE_MODELS:
            dropping = line.rstrip().endswith("\\")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class MagicSetup:
    """Where the tools are: magic executable, its version and the source tech file."""

    magic: Path
    version: str
    tech_file: Path

    @classmethod
    def discover(cls, pdk_root: Path | str | None = None) -> MagicSetup:
        """Find magic and the sky130A tech file; ToolNotFoundError says what is missing and how."""
        tech = find_tech_file(pdk_root)
        magic = find_magic()
        return cls(magic=magic, version=magic_version(magic), tech_file=tech)

    def prepare(self, build_dir: Path) -> Path:
        """Write the trimmed tech file into ``build_dir`` (once) and return its path."""
        path = Path(build_dir) / "sky130A.tech"
        if not path.exists():
            path.write_text(trim_tech_text(self.tech_file.read_text(), self.version))
        return path


def new_build_dir(parent: Path | None = None, prefix: str = "imcpnn-layout-") -> Path:
    """A fresh, empty build directory (below ``parent`` or the system temp folder)."""
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


@functools.cache
def _without_aslr() -> tuple[str, ...]:
    """``setarch <arch> -R`` where this machine allows it (some containers forbid it), else ()."""
    prefix = ("setarch", platform.machine(), "-R")
    try:
        ok = run_captured([*prefix, "true"], timeout_s=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return prefix if ok else ()


def run_magic(setup: MagicSetup, script: str, build_dir: Path, *, timeout_s: float = 300.0,
              deterministic: bool = False) -> str:
    """Run a Tcl ``script`` in batch magic inside ``build_dir``; return the log (stdout + stderr).

    Command: ``magic -dnull -noconsole -rcfile /dev/null -T <trimmed tech> run.tcl``. The script
    ends with ``quit -noprompt`` (added here). ``deterministic`` runs magic without address-space
    randomisation where the machine allows it: extresist's choices depend on pointer order, so
    its output otherwise changes from run to run. Raises NetlistError when magic crashes, times
    out, or prints a Tcl error, quoting the log tail and naming the build directory.
    """
    build_dir = Path(build_dir).resolve()  # magic runs inside it: every path handed to it is absolute
    build_dir.mkdir(parents=True, exist_ok=True)
    tech = setup.prepare(build_dir)
    (build_dir / "run.tcl").write_text(script.rstrip() + "\nquit -noprompt\n")
    cmd = [*(_without_aslr() if deterministic else ()), str(setup.magic), "-dnull", "-noconsole",
           "-rcfile", "/dev/null", "-T", str(tech), "run.tcl"]
    try:
        proc = run_captured(cmd, cwd=build_dir, timeout_s=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise NetlistError(f"magic ran longer than {timeout_s:g} s; build directory {build_dir}") from err
    log = proc.stdout + proc.stderr
    (build_dir / "magic.log").write_text(log)
    tcl_error = re.search(r"^(Error while reading|invalid command name|.*Tcl error).*$", log, re.M)
    if proc.returncode != 0 or tcl_error:
        tail = "\n".join(log.splitlines()[-15:])
        raise NetlistError(
            f"magic failed (exit code {proc.returncode}) in {build_dir}:\n{tail}\n"
            f"full log: {build_dir / 'magic.log'}"
        )
    return log


@dataclass(frozen=True)
class DrcResult:
    """magic DRC outcome of one cell: error count and ``(rule text, n_boxes)`` per violated rule."""

    cell: str
    n_errors: int
    violations: tuple[tuple[str, int], ...]
    build_dir: Path

    def raise_if_errors(self) -> None:
        """NetlistError listing the violated rules when ``n_errors > 0``."""
        if self.n_errors:
            rules = "\n".join(f"  {rule} ({n} boxes)" for rule, n in self.violations)
            raise NetlistError(
                f"DRC of {self.cell}: {self.n_errors} errors (build dir {self.build_dir}):\n{rules}"
            )


# `drc listall why` lists only errors inside the box, and an error region can lie just outside
# the cell's bounding box (a width error is flagged beside the sliver): grow the box first.
_DRC_SCRIPT = """load {cell}
select top cell
lassign [box values] x0 y0 x1 y1
box values [expr {{$x0 - 1000}}] [expr {{$y0 - 1000}}] [expr {{$x1 + 1000}}] [expr {{$y1 + 1000}}]
drc style drc(full)
drc check
drc catchup
puts "IMCPNN_DRC_COUNT [drc list count total]"
foreach {{why boxes}} [drc listall why] {{ puts "IMCPNN_DRC_RULE [llength $boxes] $why" }}
"""


def magic_drc(layout: Layout, *, setup: MagicSetup | None = None, build_dir: Path | None = None) -> DrcResult:
    """Full-rule magic DRC (``drc(full)`` style) of ``layout``, flat, in a fresh build directory."""
    setup = setup or MagicSetup.discover()
    build_dir = Path(build_dir) if build_dir is not None else new_build_dir()
    write_mag(layout, build_dir)
    log = run_magic(setup, _DRC_SCRIPT.format(cell=tcl_quote(layout.name)), build_dir)
    count = re.search(r"^IMCPNN_DRC_COUNT (\d+)", log, re.M)
    if count is None:
        raise NetlistError(f"magic printed no DRC count for {layout.name}; log: {build_dir / 'magic.log'}")
    rules = tuple(
        (m.group(2).strip(), int(m.group(1)))
        for m in re.finditer(r"^IMCPNN_DRC_RULE (\d+) (.*)$", log, re.M)
    )
    return DrcResult(layout.name, int(count.group(1)), rules, build_dir)


@dataclass(frozen=True)
class Extraction:
    """Files of one extraction: ngspice-ready netlist (parasitics, runner units), LVS netlist,
    and magic's SI-unit netlist (the one :meth:`parsed` reads for counts and capacitances)."""

    cell: str
    netlist_path: Path
    lvs_netlist_path: Path
    si_netlist_path: Path
    build_dir: Path

    def parsed(self):
        """The SI netlist as :class:`imcpnn.circuits.netlist.extracted.ExtractedNetlist`."""
        from imcpnn.circuits.netlist.extracted import parse_extracted

        return parse_extracted(self.si_netlist_path.read_text(), self.cell)


_EXTRACT_SCRIPT = """load {cell}
select top cell
extract style ngspice(si)
extract all
ext2spice format ngspice
ext2spice hierarchy {hierarchy}
ext2spice scale off
ext2spice merge none
ext2spice cthresh 0
ext2spice -o {pex}
ext2spice lvs
ext2spice -o {lvs}
"""
# Parasitic netlist first, LVS netlist second (``ext2spice lvs`` loses substrate capacitances);
# ``hierarchy on`` is the fallback after a segfault (see the module docstring).


def substrate_caps_f(ext: str) -> tuple[str, dict[str, float]]:
    """(substrate net, node -> capacitance to it in F) from a magic ``.ext`` file.

    ``.ext`` records: ``scale <rscale> <cscale> <lscale>``; ``substrate "<net>" ...``; and per
    node ``node "<name>" <R> <C> ...`` with C in attofarads times cscale.
    """
    scale = re.search(r"^scale\s+\S+\s+(\S+)", ext, re.M)
    sub = re.search(r'^substrate\s+"([^"]+)"', ext, re.M)
    if scale is None or sub is None:
        raise NetlistError("magic .ext file lacks its `scale` or `substrate` record: cannot read substrate caps")
    cscale = float(scale.group(1))
    caps = {
        m.group(1): float(m.group(2)) * cscale * 1e-18
        for m in re.finditer(r'^node\s+"([^"]+)"\s+\S+\s+(\S+)', ext, re.M)
    }
    return sub.group(1), {n: c for n, c in caps.items() if c > 0 and n != sub.group(1)}


def add_substrate_caps(spice: str, substrate: str, caps_f: dict[str, float]) -> str:
    """``spice`` with one ``Csub<k> <node> <substrate> <C>`` line per ``caps_f`` entry added before
    the last ``.ends`` (the top cell's)."""
    lines = spice.rstrip().splitlines()
    end = max(i for i, line in enumerate(lines) if line.lower().startswith(".ends"))
    extra = [f"Csub{k} {node} {substrate} {c_f * 1e15:.6g}fF" for k, (node, c_f) in enumerate(caps_f.items())]
    return "\n".join(lines[:end] + extra + lines[end:]) + "\n"


def restore_substrate_caps(spice: str, ext: str, net_of=lambda node: node) -> str:
    """``spice`` with its node-to-substrate capacitors set to the ``.ext`` node records' values.

    magic 8.3.105's ext2spice gets these wrong in both modes: hierarchical output drops them and
    flat output writes a fraction of them (worst on long wires); the ``.ext`` records hold them.
    Capacitors between a recorded net's nodes and the substrate net are dropped, then
    :func:`add_substrate_caps` adds the recorded total of each net.

    ``net_of`` maps a netlist node to its ``.ext`` net: with R extraction a net is split into
    ``net``, ``net.t0``, ``net.n1``... (:func:`_res_net`). The total is then shared among the
    split nodes in proportion to the values the netlist gave them (their R-tree positions), or
    put on one node of the net when the netlist gave none (the neuron's membrane). Record names
    go through ``net_of`` too: an internal net's record is ``a_1_2#``, its R nodes ``a_1_2.t0``.
    """
    from imcpnn.circuits.netlist.extracted import parse_spice_number

    sub, records = substrate_caps_f(ext)
    caps: dict[str, float] = {}
    named: dict[str, str] = {}  # net -> its record's node name ("a_1_2#" for net "a_1_2")
    for name, c_f in records.items():
        caps[net_of(name)] = caps.get(net_of(name), 0.0) + c_f
        named[net_of(name)] = name
    given: dict[str, dict[str, float]] = {}
    kept = []
    for line in spice.splitlines():
        words = line.split()
        if len(words) >= 4 and words[0][:1].upper() == "C" and sub in words[1:3]:
            others = set(words[1:3]) - {sub}
            node = others.pop() if others else None
            if node is None or net_of(node) in caps:
                if node is not None:
                    shares = given.setdefault(net_of(node), {})
                    shares[node] = shares.get(node, 0.0) + parse_spice_number(words[3])
                continue
        kept.append(line)
    # A net the netlist gave no substrate line gets its total on one of its nodes: the one named
    # like its record if present, else the first one met (an R netlist may hold only net.t0...).
    present: dict[str, str] = {}
    for line in kept:
        if line[:1].isalpha() and not line.startswith("."):
            for token in line.split()[1:]:
                if "=" not in token and net_of(token) in caps:
                    if token == named[net_of(token)] or net_of(token) not in present:
                        present[net_of(token)] = token
    restored = {}
    for net, c_f in caps.items():
        shares = ({n: v for n, v in given.get(net, {}).items() if v > 0}
                  or {present.get(net, named[net]): 1.0})
        total = sum(shares.values())
        restored |= {node: c_f * v / total for node, v in shares.items()}
    return add_substrate_caps("\n".join(kept) + "\n", sub, restored)


# extresist in magic 8.3.105 reads <cell>.sim and <cell>.nodes (written by ext2sim, repaired in
# Python by sim_for_extresist / nodes_for_extresist) and writes <cell>.res.ext. Its session must use
# the style the .ext was written with: in a default-style session every drive point is missed
# ("Couldn't find wire at ...", "Nets output: 0"). The R netlist comes from a third run, after the
# substrate fix below.
_SIM_SCRIPT = """load {cell}
select top cell
ext2sim labels on
ext2sim
"""

_RESIST_SCRIPT = """load {cell}
select top cell
extract style ngspice(si)
extresist tolerance 10
extresist all
"""

_RESIST_OUTPUT_SCRIPT = """load {cell}
select top cell
extract style ngspice(si)
ext2spice format ngspice
ext2spice scale off
ext2spice merge none
ext2spice cthresh 0
ext2spice extresist on
ext2spice -o {pex}
"""

#: First characters of the ``.sim`` lines that extresist (magic 8.3.105, resis/ResReadSim.c)
#: reads: comment, MOSFETs (e/d/n/p/b), lumped C and R, merges, attributes, ignored c/r/D.
_SIM_LINE_KINDS = frozenset("|ednpbCR=ADcr")


def sim_for_extresist(sim: str) -> str:
    """The ``.sim`` text without the lines magic 8.3.105's extresist rejects.

    ext2sim writes subcircuit devices (the MiM capacitor) as ``s <top> <bottom> ...`` lines; the
    reader stops at the first one ("Error in sim file s") and writes no ``.res.ext``. Dropped
    devices keep their terminals in the ``.ext``: extresist just adds no tap point for them, so
    the net's R tree ends at its port and ``ext2spice`` connects the device there.
    """
    return "".join(line for line in sim.splitlines(keepends=True) if line[:1] in _SIM_LINE_KINDS)


def nodes_for_extresist(nodes: str, sim: str, ext: str) -> str:
    """The ``.nodes`` text with each node's start point exact.

    ext2sim writes node points in ``.sim`` units (``| units: <u>``, 0.5 for sky130A) as integers;
    extresist reads them as ``x_internal = x / u``. An odd internal coordinate is then truncated by
    one unit, and a start point off the net on both axes (a pad's lower-left corner) makes
    extresist skip the net ("Couldn't find wire at ..."). The ``.ext`` ``node`` records hold the
    exact internal points; they are written back as ``x * u`` (a decimal, which extresist reads).
    """
    units = re.search(r"^\|\s*units:\s*(\S+)", sim, re.M)
    unit = float(units.group(1)) if units else 1.0
    exact = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r'^node\s+"([^"]+)"\s+\S+\s+\S+\s+(-?\d+)\s+(-?\d+)\s', ext, re.M)
    }
    out = []
    for line in nodes.splitlines():
        words = line.split()
        if len(words) >= 5 and words[1] in exact:
            words[2:4] = (f"{v * unit:g}" for v in exact[words[1]])
            line = " ".join(words)
        out.append(line)
    return "\n".join(out) + "\n"


def _res_net(node: str) -> str:
    """The net of an extresist node name: ``a_1_2.t0`` and ``a_1_2#`` -> ``a_1_2``."""
    return re.sub(r"(\.[tn]\d+)+$", "", node).rstrip("#")


def drop_broken_res_nets(res_ext: str) -> tuple[str, tuple[str, ...]]:
    """``(res_ext, dropped nets)``: the ``.res.ext`` without the R networks extresist got wrong.

    magic 8.3.105's extresist sometimes walks from a net into the diffusion of a neighbouring
    net across a MOSFET (seen on the internal node of two series pfets, whose other side is vdd).
    The run-to-run choice depends on pointer order (address-space randomisation), so the same
    input fails in some runs only. The log then says "missing SD connection"; the file has
    resistors between two nets and device terminals on a ``killnode``-removed node, which
    ext2spice silently drops (devices lost). A net with either symptom keeps its lumped ``.ext``
    node instead: its ``killnode``, ``rnode`` and ``resist`` records go, and device terminals on
    its split nodes get the net's name back. Other nets keep their R networks.
    """
    lines = res_ext.splitlines()
    quoted = lambda line: re.findall(r'"([^"]+)"', line)  # noqa: E731
    killed = {_res_net(n): n for line in lines if line.startswith("killnode") for n in quoted(line)}
    bad = set()
    for line in lines:
        names = quoted(line)
        if line.startswith("resist") and _res_net(names[0]) != _res_net(names[1]):
            bad |= {_res_net(n) for n in names}
        elif line.startswith("device"):
            bad |= {_res_net(n) for n in names if n in killed.values()}
    bad &= set(killed)  # a net that was never split has nothing to undo

    out = []
    for line in lines:
        if line.startswith(("killnode", "rnode", "resist")) and any(_res_net(n) in bad for n in quoted(line)):
            continue
        if line.startswith("device"):
            line = re.sub(
                r'"([^"]+)"', lambda m: f'"{killed.get(_res_net(m.group(1)), m.group(1))}"'
                if _res_net(m.group(1)) in bad else m.group(0), line)
        out.append(line)
    return "\n".join(out) + "\n", tuple(sorted(killed[n] for n in bad))


def fix_res_ext_substrate(res_ext: str, ext: str) -> str:
    """Give each device of a ``.res.ext`` the substrate node of the same device in the ``.ext``.

    magic 8.3.105's ``extresist`` writes the body of subcircuit MOSFETs as ``"error"`` (the tech
    file's default for "no substrate found"); the plain extraction knows the right node. Devices
    are matched by model and position (the four numbers after the model), not by order, which
    differs between the two files.
    """
    device = re.compile(r'^device msubckt (\S+) (-?\d+ -?\d+ -?\d+ -?\d+) (?:\S+=\S+ )*\s*"([^"]+)"', re.M)
    bodies = {(m.group(1), m.group(2)): m.group(3) for m in device.finditer(ext)}
    lines = res_ext.splitlines()
    for i, line in enumerate(lines):
        match = device.match(line)
        if match is None or match.group(3) != "error":
            continue
        key = (match.group(1), match.group(2))
        if key not in bodies:
            raise NetlistError(f"extresist device {key} has no counterpart in the extraction")
        lines[i] = line.replace('"error"', f'"{bodies[key]}"', 1)
    return "\n".join(lines) + "\n"


def magic_extract(
    layout: Layout,
    *,
    use_resistance: bool = False,
    setup: MagicSetup | None = None,
    build_dir: Path | None = None,
) -> Extraction:
    """Extract ``layout`` with magic: devices, parasitic C (all, ``cthresh 0``), R optional.

    Writes ``<cell>_lvs.spice`` (devices only, for netgen) and ``<cell>_pex.spice`` (devices +
    parasitics) in the build directory, both with MOSFET/MiM geometry in the runner's units
    (:func:`imcpnn.circuits.netlist.extracted.to_runner_units`). With ``use_resistance`` the parasitic
    resistors of ``extresist`` split each net into ``net``, ``net.t0``, ``net.n1``...; the nets
    left lumped are listed in ``<cell>.res.dropped``. Both netlists get each net's substrate
    capacitance from the ``.ext`` records (:func:`restore_substrate_caps`).
    """
    from imcpnn.circuits.netlist.extracted import take_junction_params, to_runner_units

    setup = setup or MagicSetup.discover()
    build_dir = Path(build_dir) if build_dir is not None else new_build_dir()
    write_mag(layout, build_dir)
    cell = layout.name
    words = {"cell": tcl_quote(cell), "pex": tcl_quote(f"{cell}_pex_si.spice"),
             "lvs": tcl_quote(f"{cell}_lvs_si.spice")}
    try:
        run_magic(setup, _EXTRACT_SCRIPT.format(**words, hierarchy="off"), build_dir)
    except NetlistError as err:
        if "exit code -11" not in str(err):
            raise
        run_magic(setup, _EXTRACT_SCRIPT.format(**words, hierarchy="on"), build_dir)
    if use_resistance:
        run_magic(setup, _SIM_SCRIPT.format(**words), build_dir)
        files = {k: build_dir / f"{cell}.{k}" for k in ("ext", "sim", "nodes", "res.ext")}
        sim = files["sim"].read_text()
        files["nodes"].write_text(nodes_for_extresist(files["nodes"].read_text(), sim, files["ext"].read_text()))
        files["sim"].write_text(sim_for_extresist(sim))
        log = run_magic(setup, _RESIST_SCRIPT.format(**words), build_dir, deterministic=True)
        if not files["res.ext"].exists():
            errors = re.findall(r"^(?:Error|Couldn't).*$", log, re.M)
            raise NetlistError(
                f"magic extresist wrote no {files['res.ext'].name} ({'; '.join(errors) or 'no message'}); "
                f"extract without resistance. Log: {build_dir / 'magic.log'}"
            )
        repaired, dropped = drop_broken_res_nets(files["res.ext"].read_text())
        # Kept for the user: which nets stay lumped although R extraction was on.
        (build_dir / f"{cell}.res.dropped").write_text("".join(f"{net}\n" for net in dropped))
        files["res.ext"].write_text(fix_res_ext_substrate(repaired, files["ext"].read_text()))
        run_magic(setup, _RESIST_OUTPUT_SCRIPT.format(**words), build_dir)
    for kind in ("lvs", "pex"):
        if not (build_dir / f"{cell}_{kind}_si.spice").exists():
            raise NetlistError(f"magic wrote no {cell}_{kind}_si.spice; log: {build_dir / 'magic.log'}")
    si = build_dir / f"{cell}_pex_si.spice"
    si.write_text(restore_substrate_caps(si.read_text(), (build_dir / f"{cell}.ext").read_text(),
                                         _res_net if use_resistance else lambda node: node))
    si.write_text(take_junction_params(si.read_text(), (build_dir / f"{cell}_lvs_si.spice").read_text()))
    paths = {}
    for kind in ("lvs", "pex"):
        source = build_dir / f"{cell}_{kind}_si.spice"
        target = build_dir / f"{cell}_{kind}.spice"
        target.write_text(to_runner_units(source.read_text()))
        paths[kind] = target
    return Extraction(cell, paths["pex"], paths["lvs"], build_dir / f"{cell}_pex_si.spice", build_dir)


def magic_gds(
    layout: Layout, path: Path, *, setup: MagicSetup | None = None, build_dir: Path | None = None
) -> Path:
    """Write ``layout`` as GDS (via magic's ``gds write``) for KLayout users; returns ``path``.

    magic writes ``<cell>.gds`` in the build directory (magic expands ``~`` and ``$`` in file
    names itself), which is then copied to ``path``.
    """
    setup = setup or MagicSetup.discover()
    build_dir = Path(build_dir) if build_dir is not None else new_build_dir()
    write_mag(layout, build_dir)
    path = Path(path).resolve()
    written = build_dir / f"{layout.name}.gds"
    written.unlink(missing_ok=True)
    run_magic(setup, f"load {tcl_quote(layout.name)}\ngds write {tcl_quote(written.name)}\n", build_dir)
    if not written.exists():
        raise NetlistError(f"magic wrote no GDS at {written}; log: {build_dir / 'magic.log'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if written.resolve() != path:
        shutil.copyfile(written, path)
    return path
