"""The circuit's operating point (supply, reset voltage, sensing bias), defined once.

The characterization measures the devices at an operating point and the network deck applies
one; the weight -> gate-bias mapping is only right when both are the same, because the I_D(V_G)
tables it inverts were measured at the characterization's V0 and VDD
(:func:`imcpnn.circuits.simulate.run.check_operating_point` refuses a run that differs).

:class:`~imcpnn.circuits.characterization.sweeps.CharacterizationConfig` and
:class:`~imcpnn.circuits.netlist.network.Network` keep the three values as flat fields under the
names used here (their JSON keys, so saved files keep loading), take their defaults from
:data:`DESIGN_POINT`, validate them with :meth:`OperatingPoint.check` and return them as one
:class:`OperatingPoint` from their ``operating_point`` property.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from imcpnn.config import require, require_positive


@dataclass(frozen=True)
class OperatingPoint:
    """Supply ``vdd_v``, membrane reset voltage ``v0_v`` and sensing-stage bias ``vb_sense_v`` (V).

    Defaults are the design's: 1.8 V is the supply of the sky130 1.8 V devices the cells use;
    V0 = 1.3 V and the 0.95 V sensing bias place the membrane window and the switching point
    (method section 5). V0 must lie below VDD: the membrane resets to V0 and the synapses move it
    within the rails.
    """

    vdd_v: float = 1.8
    v0_v: float = 1.3
    vb_sense_v: float = 0.95

    #: Field -> its name in messages, in the order messages list them.
    LABELS: ClassVar[dict[str, str]] = {"v0_v": "V0", "vdd_v": "VDD", "vb_sense_v": "sense bias"}

    def __post_init__(self) -> None:
        OperatingPoint.check(self)

    @staticmethod
    def check(owner: Any) -> None:
        """Validate ``owner.vdd_v``, ``owner.v0_v`` and ``owner.vb_sense_v`` (``owner``: an
        OperatingPoint or a config holding the same fields); errors name ``owner``'s class."""
        require_positive(owner, "vdd_v", "v0_v", "vb_sense_v", unit="V")
        require(owner, "v0_v", owner.v0_v, owner.v0_v < owner.vdd_v, f"a voltage below vdd_v={owner.vdd_v} V")

    @classmethod
    def of(cls, owner: object) -> OperatingPoint:
        """The operating point held by ``owner``'s fields of the same names."""
        return cls(**{f.name: getattr(owner, f.name) for f in fields(cls)})

    def mismatches(self, other: OperatingPoint, abs_tol: float) -> tuple[str, ...]:
        """Fields (in :attr:`LABELS` order) whose values differ from ``other``'s by more than
        ``abs_tol`` volts."""
        return tuple(name for name in self.LABELS
                     if not math.isclose(getattr(self, name), getattr(other, name), rel_tol=0, abs_tol=abs_tol))


#: The design's operating point: the default of every config that holds one.
DESIGN_POINT = OperatingPoint()
