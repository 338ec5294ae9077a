"""Data-parallel training over MPI (mpi4py), as ChainerMN does for Chainer.

``mpiexec -n N npgan train ...`` starts N processes ("ranks"). Each one holds the whole model, takes its own
shard of every global batch, and computes gradients on it; before every optimizer step the gradients of a
network are averaged across ranks with one Allreduce over one contiguous buffer, so every rank applies the
same update and the parameters stay identical. Loss terms are means over a rank's shard of equal size, so
the average of the ranks' gradients is the gradient of the mean over the global batch:

    grad (1/B) sum_i l_i = (1/N) sum_r grad (1/(B/N)) sum_{i in shard r} l_i

``world()`` is the communicator of the job: a world of size 1 when the process was not started by an MPI
launcher (mpi4py is then never imported, so npgan runs exactly as it does without MPI).

What lives here:
    Communicator           rank, size, is_main; allreduce / broadcast / abort over mpi4py's COMM_WORLD
    shard_rows             this rank's rows of a global batch
    batch_shard            inside it every random draw is the global batch's, of which the rank keeps its rows
    DistributedOptimizer   wraps an optimizer: one Allreduce of the packed gradients, then the real step
    SyncBatchNorm          batch statistics over the global batch (per-channel sums Allreduced), optional
    abort_on_error         one rank's exception ends every rank (comm.Abort), not a hang in a collective
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
import sys
import time
import traceback

from npgan import backend
from npgan.autograd import Tensor, is_grad_enabled
from npgan.nn.layers import _BatchNorm
from npgan.ops.norm import BatchNorm, _from_rows, _rowdot, _to_rows
from npgan.runtime.threads import usable_cpus

__all__ = [
    "Communicator", "DistributedOptimizer", "ShardedGenerator", "SyncBatchNorm", "abort_on_error", "batch_shard",
    "convert_sync_batchnorm", "default_blas_threads", "launcher_world_size", "shard_rows", "use_local_gpu", "world",
]

# What MPI launchers put in each process's environment (MPICH/Intel MPI's Hydra, Open MPI, MVAPICH).
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
ABORT_GRACE_SECONDS = 1.0  # between the error message and MPI_Abort: see Communicator.abort
INSTALL_HINT = 'pip install "npgan[mpi]"  (mpi4py, and MPICH if no MPI is installed)'


def launcher_world_size(environ=None) -> int:
    """How many processes an MPI launcher started, read from its environment variables (1 when none)."""
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


class Communicator:
    """The processes of one job: ``rank`` (0 .. size - 1), ``size``, ``is_main`` (rank 0).

    ``mpi_comm`` is an mpi4py communicator, or None for a world of one process, where every collective is
    the identity. Buffers handed to MPI are host (NumPy) arrays; CuPy arrays are copied to the host and
    back (with a CUDA-aware MPI, mpi4py could take them directly; see docs/DISTRIBUTED.md).
    """

    def __init__(self, mpi_comm=None):
        self.mpi_comm = mpi_comm
        self.rank = 0 if mpi_comm is None else mpi_comm.Get_rank()
        self.size = 1 if mpi_comm is None else mpi_comm.Get_size()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size})"

    def __deepcopy__(self, memo):  # modules holding it (SyncBatchNorm) may be copied: the job stays one
        return self

    def _node(self) -> tuple[int, int]:
        """(this rank's index among the ranks on this machine, how many run here)."""
        if self.mpi_comm is None:
            return 0, 1
        from mpi4py import MPI  # noqa: PLC0415

        node = self.mpi_comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return node.Get_rank(), node.Get_size()
        finally:
            node.Free()

    def local_rank(self) -> int:
        """This rank's index among the ranks on this machine (which GPU it takes)."""
        return self._node()[0]

    def local_size(self) -> int:
        """How many ranks of this job run on this machine (they share its cores)."""
        return self._node()[1]

    def allreduce_sum_(self, array):
        """Sum ``array`` over all ranks, in place (every rank gets the same sum); returns it."""
        if self.size == 1:
            return array
        from mpi4py import MPI  # noqa: PLC0415

        if backend.is_cupy_array(array):  # through the host: plain MPI cannot read device memory
            host = backend.asnumpy(array)
            self.mpi_comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            array[...] = backend.to_device(host, "cuda")
        else:
            self.mpi_comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        return array

    def broadcast_(self, array, root: int = 0):
        """Overwrite ``array`` on every rank with root's, in place; returns it."""
        if self.size == 1:
            return array
        if backend.is_cupy_array(array):
            host = backend.asnumpy(array)
            self.mpi_comm.Bcast(host, root=root)
            array[...] = backend.to_device(host, "cuda")
        else:
            self.mpi_comm.Bcast(array, root=root)
        return array

    def broadcast_object(self, obj, root: int = 0):
        """A small picklable value (a flag, a dict of numbers) from root to every rank."""
        return obj if self.size == 1 else self.mpi_comm.bcast(obj, root=root)

    def barrier(self) -> None:
        if self.size > 1:
            self.mpi_comm.Barrier()

    def broadcast_module_(self, module, root: int = 0) -> None:
        """Every parameter and buffer of ``module`` set to root's (the start of a data-parallel run)."""
        for array in _module_arrays(module):
            self.broadcast_(array, root)

    def average_buffers_(self, module) -> None:
        """Floating buffers (BatchNorm's running statistics) averaged over the ranks, in place.

        With per-rank BatchNorm each rank's running statistics follow its own shards; before a checkpoint
        or a picture they are averaged so every rank (and the file) holds one set.
        """
        if self.size == 1:
            return
        for b in module.buffers():
            array = b.data if isinstance(b, Tensor) else b
            if array is not None and backend.is_floating(array.dtype):
                self.allreduce_sum_(array)
                array *= 1.0 / self.size

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` and end every rank of the job at once (MPI_Abort)."""
        print(message, file=sys.stderr, flush=True)
        if self.size > 1:
            # The message travels from this rank's stderr through the process manager to mpiexec's; MPI_Abort
            # tears the job down at once and, on a loaded machine, could do so before the line was forwarded
            # (seen: an empty stderr). A short wait on this already-failing path lets it arrive.
            time.sleep(ABORT_GRACE_SECONDS)
            self.mpi_comm.Abort(code)
        raise SystemExit(code)


def _module_arrays(module):
    for p in module.parameters():
        yield p.data
    for b in module.buffers():
        array = b.data if isinstance(b, Tensor) else b
        if array is not None:
            yield array


_WORLD = None


def world() -> Communicator:
    """The job's communicator: MPI's COMM_WORLD when an MPI launcher started more than one process, else a
    world of size 1 (without importing mpi4py). The first call under MPI also sets this rank's BLAS threads
    (``default_blas_threads``). Raises RuntimeError when ``mpiexec`` started several processes but mpi4py is
    missing: each would otherwise train alone and overwrite the others' files."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    launched = launcher_world_size()
    if launched <= 1:
        _WORLD = Communicator(None)
        return _WORLD
    try:
        from mpi4py import MPI  # noqa: PLC0415
    except ImportError as err:
        raise RuntimeError(
            f"npgan was started by an MPI launcher as {launched} processes, but mpi4py cannot be imported "
            f"({err}); install it with: {INSTALL_HINT}"
        ) from None
    _WORLD = Communicator(MPI.COMM_WORLD)
    threads = default_blas_threads(_WORLD)
    if threads is not None:
        _limit_blas_threads(threads)
    return _WORLD


def use_local_gpu(comm: Communicator) -> int | None:
    """Under MPI with ``device='cuda'``: the k-th rank on a machine makes GPU k (mod the GPUs there) CuPy's
    current device, so N ranks on a machine with N GPUs use one each instead of all sharing GPU 0. Call it
    before any array is put on the GPU; returns the GPU's index (None in a world of one process)."""
    if comm.size == 1:
        return None
    cupy = backend.array_module_for("cuda")
    index = comm.local_rank() % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(index).use()
    return index


def default_blas_threads(comm: Communicator, environ=None) -> int | None:
    """(cores / ranks on this machine) BLAS threads per rank, so N ranks do not oversubscribe the cores.

    The cores are those this process may run on: a launcher that binds each rank to its own cores gives
    fewer, never more (a rank bound to a socket shared with other ranks may get fewer than it could use); in a
    container with a CPU quota, at most the quota's whole CPUs (``threads.usable_cpus``).
    None when the user chose a thread count through the environment (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
    MKL_NUM_THREADS, BLIS_NUM_THREADS): that choice wins.
    """
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in THREAD_VARIABLES):
        return None
    return max(1, usable_cpus() // max(1, comm.local_size()))


def _limit_blas_threads(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:  # then the environment's thread count stands; README says how to set it
        return
    threadpool_limits(limits=threads)


# -- the batch and its random numbers ----------------------------------------------------------------------


def shard_rows(array, count: int, index: int):
    """Shard ``index`` of ``count`` equal shards of ``array`` along its first dimension (the batch)."""
    n = array.shape[0] // count
    return array[index * n:(index + 1) * n]


class ShardedGenerator:
    """Stands in for npgan's host generator inside ``batch_shard``: each draw of n rows is made for ``count``
    times n rows from ``generator``, and rows ``index * n`` to ``(index + 1) * n`` are returned.

    Every rank draws the same numbers one process draws for the global batch, so the ranks' generators stay in
    step with it, and keeps its own rows: the rows of its shard of the data. Draws of no shape (one number)
    are every rank's alike. Only the methods npgan's draws use are offered; any other is refused, since it
    could not be split by rows.
    """

    def __init__(self, generator, count: int, index: int):
        if not 0 <= index < count:
            raise ValueError(f"ShardedGenerator: index must be in [0, {count}), got {index}")
        self.generator, self.count, self.index = generator, int(count), int(index)

    def _rows(self, draw, size):
        if size is None:
            return draw(size=None)
        shape = (int(size),) if isinstance(size, numbers.Integral) else tuple(size)
        if not shape:
            return draw(size=shape)
        return shard_rows(draw(size=(shape[0] * self.count,) + shape[1:]), self.count, self.index)

    def random(self, size=None, dtype=backend.numpy.float64):
        return self._rows(functools.partial(self.generator.random, dtype=dtype), size)

    def standard_normal(self, size=None, dtype=backend.numpy.float64):
        return self._rows(functools.partial(self.generator.standard_normal, dtype=dtype), size)

    def uniform(self, low=0.0, high=1.0, size=None):
        self._check_scalar("uniform", low=low, high=high)
        return self._rows(functools.partial(self.generator.uniform, low, high), size)

    def normal(self, loc=0.0, scale=1.0, size=None):
        self._check_scalar("normal", loc=loc, scale=scale)
        return self._rows(functools.partial(self.generator.normal, loc, scale), size)

    def integers(self, low, high=None, size=None, dtype=backend.numpy.int64, endpoint=False):
        self._check_scalar("integers", low=low, high=high)
        return self._rows(functools.partial(self.generator.integers, low, high, dtype=dtype, endpoint=endpoint), size)

    @staticmethod
    def _check_scalar(method, **bounds):
        for name, value in bounds.items():
            if value is not None and backend.numpy.ndim(value):
                raise ValueError(f"batch_shard: {method}'s {name} must be a number inside a sharded step (an array "
                                 f"of bounds would not be split with the rows), got shape {backend.numpy.shape(value)}")

    def __getattr__(self, name):
        raise AttributeError(f"batch_shard: npgan's generator inside a sharded step offers random, standard_normal, "
                             f"uniform, normal and integers, whose rows it splits among the ranks; {name!r} cannot be "
                             "split so (draw it outside the step, or from a generator of its own)")


@contextlib.contextmanager
def batch_shard(comm: Communicator):
    """``with distributed.batch_shard(comm):`` every random number npgan draws inside the block (noise, labels,
    dropout masks, layer noise: ``backend.host_rng()``, ``backend.random_normal`` / ``random_uniform``) is drawn
    for the global batch of ``comm.size`` shards, and this rank keeps its rows (``ShardedGenerator``). Code
    inside draws for its own shard, as one process draws for its batch, and N ranks use the numbers one
    process would. The trainer enters it around each training step; in a world of one process it changes
    nothing. Every draw inside must be per sample, its first dimension the batch's (``ShardedGenerator``
    refuses shuffles and the like)."""
    if comm.size == 1:
        yield
        return
    with backend.random_source(ShardedGenerator(backend.host_rng(), comm.size, comm.rank)):
        yield


@contextlib.contextmanager
def abort_on_error(comm: Communicator, where=lambda: ""):
    """Inside this block, an exception on any rank ends the whole job with one message naming the rank.

    Without it, the other ranks would wait forever in their next collective for a rank that is gone.
    ``where`` returns a few words of context (e.g. the step) for the message.
    """
    if comm.size == 1:
        yield
        return
    try:
        yield
    except Exception as err:
        if os.environ.get("NPGAN_DEBUG"):
            traceback.print_exc()
        context = where()
        comm.abort(f"npgan: error: rank {comm.rank} of {comm.size} failed{' ' + context if context else ''}: "
                   f"{type(err).__name__}: {err}\nnpgan: stopping all {comm.size} ranks (MPI_Abort)")


class DistributedOptimizer:
    """An optimizer whose ``step()`` first averages the gradients over all ranks (ChainerMN's
    ``create_multi_node_optimizer``, PyTorch's DDP): every gradient is packed into one contiguous buffer,
    each scaled by 1 / size, the buffer is summed with one Allreduce, and the averaged gradients are handed
    to the wrapped optimizer. Everything else (``param_groups``, ``state_dict``, ``zero_grad``) is the
    wrapped optimizer's, so checkpoints do not depend on the number of ranks.

    A parameter with no gradient on any rank keeps none (the optimizer skips it, as in one process): the
    buffer carries one count per parameter of the ranks that had a gradient. After ``step`` each ``.grad``
    is a view into the buffer, valid until the next ``step``.
    """

    def __init__(self, optimizer, comm: Communicator):
        self.optimizer, self.comm = optimizer, comm
        self._buffer = None
        self._averaged = False  # allreduce_grads ran since the last step: step must not average again

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def _params(self):
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def allreduce_grads(self) -> None:
        """Replace every parameter's gradient by its average over the ranks (one Allreduce).

        ``step`` calls it; call it yourself to work on the averaged gradients before the step (gradient
        clipping must see the global gradient, as in one process), and ``step`` will not average them again.
        """
        if self.comm.size == 1 or self._averaged:
            return
        params = self._params()
        dtypes = {p.data.dtype for p in params}
        if len(dtypes) != 1:
            raise TypeError(f"DistributedOptimizer packs one buffer per network: parameters of one dtype "
                            f"expected, got {sorted(map(str, dtypes))}")
        total = sum(p.data.size for p in params)
        xp = backend.get_array_module(params[0].data)
        if self._buffer is None or self._buffer.size != total + len(params):
            self._buffer = xp.empty(total + len(params), dtype=params[0].data.dtype)
        buffer, offset, scale = self._buffer, 0, 1.0 / self.comm.size
        counts = buffer[total:]
        for i, p in enumerate(params):
            n = p.data.size
            if p.grad is None:
                buffer[offset:offset + n] = 0.0
                counts[i] = 0.0
            else:  # packed already divided by N: the sum over the ranks is the mean, one pass fewer
                xp.multiply(p.grad.data.reshape(-1), scale, out=buffer[offset:offset + n])
                counts[i] = 1.0
            offset += n
        self.comm.allreduce_sum_(buffer)
        offset = 0
        for i, p in enumerate(params):
            n = p.data.size
            p.grad = Tensor(buffer[offset:offset + n].reshape(p.data.shape)) if counts[i] > 0 else None
            offset += n
        self._averaged = True

    def step(self):
        self.allreduce_grads()
        self._averaged = False
        return self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._averaged = False
        self.optimizer.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)


# -- synchronised batch norm -------------------------------------------------------------------------------


class SyncBatchNormFunction(BatchNorm):
    """Training-mode batch norm with the statistics of the global batch (all ranks' shards together).

    Forward: each rank computes per channel its count M_r, mean m_r and M2_r = sum_j (x_j - m_r)^2, and one
    Allreduce (float64) sums S1 = sum_r M_r m_r and S2 = sum_r (M2_r + M_r m_r^2); then
        mean = S1 / M,   var = S2 / M - mean^2,   M = sum_r M_r
    (the local centring keeps float32's rounding out of the difference). Backward: one Allreduce of the
    per-channel sum_j g and sum_j g * x_hat; the input gradient uses these global sums with the global M,
    while weight and bias get the rank's own sums, which the gradient averaging then combines.
    """

    def __init__(self, comm, eps, running_mean=None, running_var=None, momentum=0.1):
        super().__init__(eps, running_mean, running_var, momentum)
        self.comm = comm

    def forward(self, x, weight, bias):
        xp = backend.get_array_module(x)
        rows = _to_rows(x)
        channels, local_count = rows.shape
        local_mean = rows.mean(axis=1)
        centered = rows - local_mean[:, None]
        local_m2 = _rowdot(centered, centered)
        stats = xp.empty(2 * channels + 1, dtype="float64")
        mean64 = local_mean.astype("float64")
        stats[:channels] = local_count * mean64
        stats[channels:2 * channels] = local_m2 + local_count * mean64 * mean64
        stats[-1] = local_count
        self.comm.allreduce_sum_(stats)
        count = float(stats[-1])
        global_mean = stats[:channels] / count
        var = xp.maximum(stats[channels:2 * channels] / count - global_mean * global_mean, 0.0)
        mean_ = global_mean.astype(x.dtype)
        centered -= (mean_ - local_mean)[:, None]  # now x - global mean
        inv_std = (1.0 / xp.sqrt(var + self.eps)).astype(x.dtype)
        self.mean, self.inv_std, self.count = mean_, inv_std, count
        if self.running_mean is not None and self.running_var is not None:
            unbiased = (var * (count / (count - 1))).astype(x.dtype)
            self.running_mean *= 1.0 - self.momentum
            self.running_mean += self.momentum * mean_
            self.running_var *= 1.0 - self.momentum
            self.running_var += self.momentum * unbiased
        self.running_mean = self.running_var = None
        centered *= (inv_std * weight)[:, None]
        centered += bias[:, None]
        return _from_rows(centered, x.shape)

    def backward(self, gy):
        if is_grad_enabled():
            raise NotImplementedError(
                "synchronised BatchNorm has no second derivative: a gradient penalty (WGAN-GP, R1) cannot pass "
                "through it; use per-rank BatchNorm or --critic-norm layer/none for the critic"
            )
        x, weight, _ = self.inputs
        xp = backend.get_array_module(x.data)
        x_rows, g = _to_rows(x.data), _to_rows(gy.data)
        channels = x_rows.shape[0]
        gx_rows = x_rows - self.mean[:, None]
        local = xp.empty(2 * channels, dtype=x_rows.dtype)
        local[:channels] = g.sum(axis=1)
        local[channels:] = _rowdot(g, gx_rows) * self.inv_std
        sums = self.comm.allreduce_sum_(local.copy())
        sum_g, sum_g_xhat = sums[:channels], sums[channels:]
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            # gx = w inv_std (g - sum_g / M - x_hat * sum_g_xhat / M), sums and M over the global batch
            gx_rows *= (self.inv_std * sum_g_xhat * (-1.0 / self.count))[:, None]
            gx_rows += g
            gx_rows -= (sum_g * (1.0 / self.count))[:, None]
            gx_rows *= (weight.data * self.inv_std)[:, None]
            gx = Tensor(_from_rows(gx_rows, x.shape))
        if self.needs_input_grad[1]:
            gw = Tensor(local[channels:])  # the rank's share: averaging over ranks sums the shares
        if self.needs_input_grad[2]:
            gb = Tensor(local[:channels])
        return gx, gw, gb


class SyncBatchNorm:
    """Mixed into a BatchNorm1d/2d by ``convert_sync_batchnorm``: in training mode its statistics are
    those of the global batch (``SyncBatchNormFunction``); in eval mode it is the layer it was.

    The parameters, buffers and state_dict names stay the layer's, so checkpoints are interchangeable
    with per-rank BatchNorm and with single-process runs.
    """

    def forward(self, x):
        comm = self.__dict__["comm"]
        if not self.training or comm.size == 1:
            return super().forward(x)
        if x.ndim not in self._dims or x.shape[1] != self.num_features:
            return super().forward(x)  # its error message
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        xp = backend.get_array_module(x.data)
        weight = self.weight if self.weight is not None else Tensor(xp.ones(self.num_features, dtype=x.dtype))
        bias = self.bias if self.bias is not None else Tensor(xp.zeros(self.num_features, dtype=x.dtype))
        running_mean = self.running_mean.data if self.track_running_stats else None
        running_var = self.running_var.data if self.track_running_stats else None
        return SyncBatchNormFunction(comm, self.eps, running_mean, running_var, factor)(x, weight, bias)


_SYNC_CLASSES: dict = {}


def convert_sync_batchnorm(module, comm: Communicator):
    """Make every BatchNorm layer of ``module`` synchronised over ``comm`` (in place); returns ``module``.

    Like ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``; the layers keep their parameters (convert
    before building the optimizers or after, either works) and their state_dict names.
    """
    for layer in module.modules():
        if isinstance(layer, _BatchNorm) and not isinstance(layer, SyncBatchNorm):
            cls = type(layer)
            if cls not in _SYNC_CLASSES:
                _SYNC_CLASSES[cls] = type(f"Sync{cls.__name__}", (SyncBatchNorm, cls),
                                          {"__doc__": SyncBatchNorm.__doc__})
            layer.__class__ = _SYNC_CLASSES[cls]
            layer.__dict__["comm"] = comm
    return module
