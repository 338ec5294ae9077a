"""npgan.runtime.distributed: a world of one process without MPI, and data-parallel training under ``mpiexec -n 2``.

The MPI tests start ``mpiexec -n N python tests/distributed_worker.py ...`` and skip, saying why, where
mpiexec or mpi4py is missing (``pip install "npgan[mpi]"`` brings both; .ci/run installs them).
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import npgan
from npgan.checkpoint import load_checkpoint
from npgan.gan.trainer import TrainConfig, Trainer
from npgan.runtime import distributed, threads

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "distributed_worker.py")
MPIEXEC = shutil.which("mpiexec")
ROUNDING = 5e-5  # a quarter of one Adam step (lr 2e-4): see the GAN test
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or not HAVE_MPI4PY,
    reason='needs mpiexec and mpi4py: pip install "npgan[mpi]" (mpi4py and the mpich wheel)',
)


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    for name in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES:  # the test itself is not a rank
        env.pop(name, None)
    return env


def run(ranks, *args, timeout=120):
    """``mpiexec -n ranks python *args`` (a plain ``python`` for one rank); the finished process.

    On a timeout the whole process group (mpiexec and every rank) is killed before the test fails.
    """
    command = [sys.executable, *args]
    if ranks > 1:
        command = [MPIEXEC, "-n", str(ranks), *command]
    process = subprocess.Popen(command, env=_env(), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{' '.join(command)} did not end within {timeout} s")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def check(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def params(path):
    with np.load(path) as arrays:
        return {k: arrays[k] for k in arrays.files}


# -- a world of one process ------------------------------------------------------------------------------


@pytest.fixture
def fresh_world(monkeypatch):
    """world() computed anew from the environment, which holds no MPI launcher variables."""
    monkeypatch.setattr(distributed, "_WORLD", None)
    for name in distributed.SIZE_VARIABLES + distributed.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    distributed._WORLD = None


def test_world_without_a_launcher_is_one_process_and_never_imports_mpi4py(fresh_world, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # an import would fail
    comm = distributed.world()
    assert (comm.rank, comm.size, comm.is_main) == (0, 1, True)
    assert distributed.world() is comm


def test_launcher_without_mpi4py_says_how_to_install_it(fresh_world, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(RuntimeError, match=r"MPI launcher as 2 processes.*npgan\[mpi\]"):
        distributed.world()


def test_launcher_world_size_reads_mpich_and_open_mpi_variables():
    assert distributed.launcher_world_size({}) == 1
    assert distributed.launcher_world_size({"PMI_SIZE": "4"}) == 4
    assert distributed.launcher_world_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3


def test_default_blas_threads_divide_the_cores_among_the_ranks_unless_the_user_chose(monkeypatch, tmp_path):
    class TwoRanksHere(distributed.Communicator):
        def local_size(self):
            return 2

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(threads, "CGROUP_ROOT", str(tmp_path))  # no CPU quota
    assert distributed.default_blas_threads(TwoRanksHere(), environ={}) == 4
    assert distributed.default_blas_threads(TwoRanksHere(), environ={"OMP_NUM_THREADS": "3"}) is None
    (tmp_path / "cpu.max").write_text("300000 100000\n")  # a container allowed 3 of the 8 CPUs
    assert distributed.default_blas_threads(TwoRanksHere(), environ={}) == 1


def test_each_rank_on_a_machine_takes_its_own_gpu(monkeypatch):
    used = []

    class FakeCuda:  # the two calls use_local_gpu makes of CuPy
        class runtime:
            getDeviceCount = staticmethod(lambda: 2)

        class Device:
            def __init__(self, index):
                self.index = index

            def use(self):
                used.append(self.index)

    class FakeCupy:
        cuda = FakeCuda

    class FourthRankHere(distributed.Communicator):
        def _node(self):
            return 3, 4

    monkeypatch.setattr(distributed.backend, "array_module_for", lambda device: FakeCupy)
    comm = FourthRankHere()
    comm.size = 4
    assert distributed.use_local_gpu(comm) == 1 and used == [1]  # local rank 3 of 4, on 2 GPUs: GPU 1
    assert distributed.use_local_gpu(distributed.Communicator()) is None and used == [1]


def test_collectives_of_a_world_of_one_are_the_identity():
    comm = distributed.Communicator()
    a = np.arange(4, dtype=np.float32)
    assert comm.allreduce_sum_(a) is a and (a == np.arange(4)).all()
    assert comm.broadcast_(a) is a and comm.broadcast_object({"x": 1}) == {"x": 1}
    with pytest.raises(SystemExit):
        comm.abort("npgan: error: a test of the message")


def test_distributed_optimizer_in_a_world_of_one_is_the_plain_optimizer():
    w = npgan.nn.Parameter(npgan.ones(3))
    opt = distributed.DistributedOptimizer(npgan.optim.SGD([w], lr=0.5), distributed.Communicator())
    w.grad = npgan.tensor(np.array([1.0, 2.0, 4.0], dtype=np.float32))
    opt.step()
    np.testing.assert_array_equal(w.data, np.array([0.5, 0.0, -1.0], dtype=np.float32))
    assert opt.param_groups is opt.optimizer.param_groups


def test_sync_batchnorm_in_a_world_of_one_is_batchnorm():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4, 4)).astype(np.float32)
    plain, synced = npgan.nn.BatchNorm2d(3), npgan.nn.BatchNorm2d(3)
    distributed.convert_sync_batchnorm(synced, distributed.Communicator())
    assert type(synced).__name__ == "SyncBatchNorm2d" and list(synced.state_dict()) == list(plain.state_dict())
    np.testing.assert_array_equal(synced(npgan.tensor(x)).data, plain(npgan.tensor(x)).data)


class Shard:
    """What batch_shard reads of a communicator: rank ``rank`` of ``size``."""

    def __init__(self, size, rank):
        self.size, self.rank = size, rank


def draws(batch):
    """Every kind of draw a training step makes, for ``batch`` samples, from npgan's generator."""
    rng = npgan.backend.host_rng()
    return [npgan.randn(batch, 2).numpy(), npgan.rand(batch, 1, 1, 1).numpy(),
            npgan.functional.dropout(npgan.ones(batch, 5), 0.5).numpy(),
            npgan.nn.GaussianNoise(1.0)(npgan.zeros(batch, 3)).numpy(),
            rng.integers(0, 10, size=batch), rng.uniform(0.7, 1.2, batch), rng.random(batch) < 0.2,
            np.asarray(rng.standard_normal())]  # one number: every rank's alike


def test_inside_batch_shard_each_draw_is_this_ranks_rows_of_the_global_batch():
    npgan.manual_seed(3)
    whole = draws(6)
    after = npgan.randn(2).numpy()
    for rank in range(3):
        npgan.manual_seed(3)
        with distributed.batch_shard(Shard(3, rank)):
            shard = draws(2)
        for got, expected in zip(shard[:-1], whole[:-1]):
            np.testing.assert_array_equal(got, expected[2 * rank:2 * rank + 2])
        np.testing.assert_array_equal(shard[-1], whole[-1])
        np.testing.assert_array_equal(npgan.randn(2).numpy(), after)  # the generator moved as one process's


def test_batch_shard_in_a_world_of_one_and_outside_it_draws_as_ever():
    npgan.manual_seed(4)
    plain = draws(4)
    npgan.manual_seed(4)
    with distributed.batch_shard(distributed.Communicator()):
        assert npgan.backend.host_rng() is npgan.backend._host_rng
        alone = draws(4)
    for a, b in zip(plain, alone):
        np.testing.assert_array_equal(a, b)


def test_batch_shard_refuses_draws_it_cannot_split_by_rows():
    with distributed.batch_shard(Shard(2, 1)):
        with pytest.raises(AttributeError, match="'permutation' cannot be split"):
            npgan.backend.host_rng().permutation(8)
        with pytest.raises(ValueError, match="uniform's low must be a number"):
            npgan.backend.host_rng().uniform(np.zeros(4), 1.0, 4)
    with pytest.raises(ValueError, match=r"index must be in \[0, 2\), got 2"):
        distributed.ShardedGenerator(np.random.default_rng(0), 2, 2)


def test_shard_rows_gives_each_of_count_shards_its_rows():
    rows = np.arange(12).reshape(6, 2)
    assert [distributed.shard_rows(rows, 3, i)[:, 0].tolist() for i in range(3)] == [[0, 2], [4, 6], [8, 10]]


def test_a_global_batch_that_does_not_divide_by_the_ranks_is_refused_naming_both():
    comm = distributed.Communicator()
    comm.size = 3  # the check comes before any collective
    with pytest.raises(ValueError, match=r"--batch-size 64 .* the 3 MPI ranks"):
        Trainer(TrainConfig(model="gan", dataset="fake", batch_size=64, steps=1), progress=False, comm=comm)


def test_the_unrolled_gan_is_refused_on_several_ranks_with_a_message():
    comm = distributed.Communicator()
    comm.size = 2  # the check comes before any collective
    with pytest.raises(ValueError, match=r"--unroll does not run on 2 MPI ranks"):
        Trainer(TrainConfig(model="gan", dataset="ring8", unroll=1, steps=1), progress=False, comm=comm)


# -- under mpiexec -n 2 ----------------------------------------------------------------------------------


@needs_mpi
def test_gradients_and_batch_norm_sums_are_averaged_over_two_ranks():
    result = check(run(2, WORKER, "collectives"))
    assert result.stdout.count("collectives ok") == 2


@needs_mpi
def test_mpiexec_without_mpi4py_stops_every_rank_with_the_install_hint(tmp_path):
    train = ["train", "gan", "--dataset", "fake", "--steps", "1", "--out", str(tmp_path)]
    block_mpi4py = f"import sys; sys.modules['mpi4py'] = None; from npgan.cli import main; sys.exit(main({train!r}))"
    result = run(2, "-c", block_mpi4py, timeout=60)
    assert result.returncode != 0
    assert result.stderr.count("started by an MPI launcher as 2 processes, but mpi4py cannot be imported") == 2
    assert 'pip install "npgan[mpi]"' in result.stderr
    assert not os.path.exists(tmp_path / "checkpoint.npz")


@needs_mpi
def test_two_ranks_hold_identical_parameters_equal_to_one_process_on_the_same_global_batch(tmp_path):
    # The original GAN (no BatchNorm), 20 steps, global batch 64: 32 samples per rank.
    (tmp_path / "two").mkdir(), (tmp_path / "one").mkdir()
    check(run(2, WORKER, "train", str(tmp_path / "two"), "gan", "20", "64"))
    check(run(1, WORKER, "train", str(tmp_path / "one"), "gan", "20", "64"))
    rank0, rank1 = params(tmp_path / "two" / "params-rank0.npz"), params(tmp_path / "two" / "params-rank1.npz")
    single = params(tmp_path / "one" / "params-rank0.npz")
    for name in rank0:
        # Both ranks apply the same Allreduced gradient to the same weights: equal bit for bit.
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
        # One process sums the batch's 64 per-sample gradients in one GEMM; two ranks sum 32 each and MPI adds
        # the two sums: the same numbers rounded in another order (relative ~1e-7 of a gradient). Adam divides
        # each coordinate by its own running scale, so where a gradient is near zero that rounding can show in
        # the step (at most 2 lr = 4e-4 per step); ROUNDING = lr / 4 bounds what it does here (measured: 7.5e-7
        # for this run, 8.4e-6 for DCGAN below), while another batch (a wrong shard, other noise, per-rank
        # BatchNorm) moves weights by whole steps (per-rank BatchNorm: 1.3e-3).
        np.testing.assert_allclose(rank0[name], single[name], rtol=0, atol=ROUNDING, err_msg=name)


@needs_mpi
@pytest.mark.parametrize("option", ["clip=0.01", "soft=0.7,1.2", "flip=0.2", "dropout=0.3", "layer_noise=0.1"])
def test_clipping_label_tricks_and_noise_in_g_on_two_ranks_equal_one_process(tmp_path, option):
    # clip: a bound far below the gradients' norms, so every step clips; clipping each rank's own gradient
    # before averaging would scale the two halves by different factors. soft, flip, dropout, layer_noise: each
    # rank must use its shard of the labels, masks and noise one process draws for the global batch, not the
    # first half twice.
    (tmp_path / "two").mkdir(), (tmp_path / "one").mkdir()
    check(run(2, WORKER, "train", str(tmp_path / "two"), "gan", "10", "64", option))
    check(run(1, WORKER, "train", str(tmp_path / "one"), "gan", "10", "64", option))
    rank0, single = params(tmp_path / "two" / "params-rank0.npz"), params(tmp_path / "one" / "params-rank0.npz")
    for name in rank0:
        np.testing.assert_allclose(rank0[name], single[name], rtol=0, atol=ROUNDING, err_msg=name)


@needs_mpi
def test_synchronised_batchnorm_equals_one_process_and_per_rank_batchnorm_does_not(tmp_path):
    for name in ("sync", "per-rank", "one"):
        (tmp_path / name).mkdir()
    check(run(2, WORKER, "train", str(tmp_path / "sync"), "dcgan", "3", "16", "sync"))
    check(run(2, WORKER, "train", str(tmp_path / "per-rank"), "dcgan", "3", "16"))
    check(run(1, WORKER, "train", str(tmp_path / "one"), "dcgan", "3", "16"))
    single = params(tmp_path / "one" / "params-rank0.npz")
    synced = params(tmp_path / "sync" / "params-rank0.npz")
    per_rank = params(tmp_path / "per-rank" / "params-rank0.npz")
    worst_sync = max(np.abs(synced[k] - single[k]).max() for k in single)
    worst_per_rank = max(np.abs(per_rank[k] - single[k]).max() for k in single)
    # The bound and its reason: the GAN test above. Statistics of 8 samples instead of 16 move the weights by
    # whole Adam steps (lr = 2e-4).
    assert worst_sync < ROUNDING, worst_sync
    assert worst_per_rank > 4 * ROUNDING, worst_per_rank


@needs_mpi
def test_wgan_gp_with_synchronised_batchnorm_equals_one_process_penalty_included(tmp_path):
    # The critic has no BatchNorm (the penalty's second derivative runs through it), G has; the penalty's
    # interpolation weights are drawn for the global batch and sliced, like the noise.
    (tmp_path / "sync").mkdir(), (tmp_path / "one").mkdir()
    check(run(2, WORKER, "train", str(tmp_path / "sync"), "wgan-gp", "2", "16", "sync"))
    check(run(1, WORKER, "train", str(tmp_path / "one"), "wgan-gp", "2", "16"))
    single, synced = params(tmp_path / "one" / "params-rank0.npz"), params(tmp_path / "sync" / "params-rank0.npz")
    for name in single:  # 2 generator steps, 10 critic steps (n_critic 5); the bound: the GAN test's
        np.testing.assert_allclose(synced[name], single[name], rtol=0, atol=ROUNDING, err_msg=name)


@needs_mpi
def test_dcgan_with_synchronised_batchnorm_resumes_from_two_ranks_on_one_through_the_cli(tmp_path):
    out = str(tmp_path)
    cli = ["-m", "npgan.cli", "train", "dcgan", "--dataset", "fake", "--image-size", "32", "--ngf", "8",
           "--ndf", "8", "--batch-size", "8", "--out", out, "--quiet", "--no-metrics", "--log-every", "1"]
    first = check(run(2, *cli, "--steps", "3", "--sync-bn"))
    assert first.stdout.count("trained dcgan for 3 steps") == 1  # rank 0 alone reports
    assert load_checkpoint(os.path.join(out, "checkpoint.npz"))["config"]["sync_batch_norm"] is True
    resumed = check(run(1, *cli, "--resume", "--steps", "5"))
    assert "resuming dcgan from step 3" in resumed.stdout
    assert load_checkpoint(os.path.join(out, "checkpoint.npz"))["step"] == 5
    with open(os.path.join(out, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4, 5]  # one writer: no duplicate rows


@needs_mpi
def test_dcgan_with_per_rank_batchnorm_resumes_from_one_rank_on_two(tmp_path):
    check(run(1, WORKER, "train", str(tmp_path), "dcgan", "3", "8"))
    check(run(2, WORKER, "resume", str(tmp_path), "5"))
    assert load_checkpoint(os.path.join(tmp_path, "checkpoint.npz"))["step"] == 5
    rank0, rank1 = params(tmp_path / "params-rank0.npz"), params(tmp_path / "params-rank1.npz")
    for name in rank0:  # weights by the averaged gradients, running statistics by averaging at the checkpoint
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)


@needs_mpi
@pytest.mark.parametrize("kind, message", [
    ("raise", "rank 1 of 2 failed at step 3: ValueError: injected failure"),
    ("nan", "rank 1 of 2 failed at step 3: TrainingDiverged: loss_d became nan at step 3"),
])
def test_a_rank_raising_or_diverging_mid_step_ends_the_whole_job_with_one_message(tmp_path, kind, message):
    start = time.perf_counter()
    result = run(2, WORKER, "fail", str(tmp_path), "3", kind, timeout=60)  # a hang would time out
    elapsed = time.perf_counter() - start
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stderr.count("stopping all 2 ranks") == 1
    assert elapsed < 30, f"the job took {elapsed:.1f} s to end"


@needs_mpi
def test_the_throughput_benchmark_runs_one_process_two_ranks_and_the_independent_ceiling(tmp_path):
    out = tmp_path / "rows.jsonl"
    result = check(run(1, "benchmarks/mpi_throughput.py", "--configs", "gan-mlp", "--steps", "2", "--rounds", "1",
                       "--warmup", "0", "--no-torch", "--one-thread", "--json", str(out), timeout=240))
    rows = {row["variant"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"1 process", "2 ranks", "1 process, 1 thread", "2 independent processes, 1 thread each"}
    assert all(row["ms_median"] > 0 and row["steps"] == 2 for row in rows.values()), rows
    assert rows["2 ranks"]["allreduce_ms"] > 0
    # every timed step averages both networks' gradients (one Allreduce each), not only the first one
    assert rows["2 ranks"]["allreduces_per_step"] == 2 and rows["1 process"]["allreduces_per_step"] == 0
    independent = rows["2 independent processes, 1 thread each"]
    assert independent["ranks"] == 2 and independent["allreduce_ms"] == 0  # no MPI between them
    assert independent["threads_per_process"] == [1]
    assert "| gan-mlp (step) |" in result.stdout
