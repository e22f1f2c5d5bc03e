"""Run ngspice on sky130 models, read its raw traces, cache and parallelize runs (locally or on a Dask
cluster). Knows nothing of the other subpackages."""

from ._cache import CacheInfo as CacheInfo
from ._cache import cache_info as cache_info
from ._cache import clean_cache as clean_cache
from ._cache import human_bytes as human_bytes
from ._models import CacheWarning as CacheWarning
from ._models import Corner as Corner
from ._models import DeviceUse as DeviceUse
from ._models import device_uses as device_uses
from ._models import ModelSource as ModelSource
from ._models import PdkModelsWarning as PdkModelsWarning
from ._models import cache_root as cache_root
from ._models import default_cache_dir as default_cache_dir
from ._models import find_models as find_models
from ._proc import KILL_GRACE_S as KILL_GRACE_S
from ._proc import Stopped as Stopped
from ._proc import run_captured as run_captured
from ._raw import Plot as Plot
from ._raw import RawFile as RawFile
from ._raw import Trace as Trace
from ._runner import SimResult as SimResult
from ._runner import find_ngspice as find_ngspice
from ._runner import run as run
from ._distributed import DASK_FIX as DASK_FIX
from ._distributed import dask_client as dask_client
from ._distributed import run_many as run_many
from ._sim import Ac as Ac
from ._sim import Dc as Dc
from ._sim import Op as Op
from ._sim import Sim as Sim
from ._sim import Tran as Tran
from ._doctor import Check as Check
from ._pyspice import pyspice_version as pyspice_version
from ._doctor import probe as probe_toolchain
from ._doctor import required_ok as toolchain_ok
