"""What tests/test_distributed.py runs in each rank of ``mpiexec -n N python tests/distributed_worker.py ...``.

    train OUT MODEL STEPS BATCH [sync]   train on fake data, then write OUT/params-rank{R}.npz (every rank)
    resume OUT STEPS                     continue OUT/checkpoint.npz up to STEPS, then write the same files
    collectives                          DistributedOptimizer's averaging; SyncBatchNorm against BatchNorm
    fail OUT STEP [nan]                  rank 1 raises in generator step STEP (or its loss becomes NaN there);
                                         the job must end, not hang
"""

import os
import sys

import numpy as np

import npgan
import npgan.viz
from npgan.gan.trainer import TrainConfig, Trainer
from npgan.runtime import distributed


def config(out, model, steps, batch, sync=False, **extra):
    small = dict(hidden=32) if model == "gan" else dict(ngf=8, ndf=8, image_size=32)
    return TrainConfig(model=model, dataset="fake", batch_size=batch, steps=steps, out=out, metrics=False,
                       log_every=1, sample_every=1000, checkpoint_every=1000, sync_batch_norm=sync, **small, **extra)


def save_params(trainer, out):
    arrays = {f"G.{k}": np.asarray(v.data) for k, v in trainer.G.state_dict().items()}
    arrays.update({f"D.{k}": np.asarray(v.data) for k, v in trainer.D.state_dict().items()})
    np.savez(os.path.join(out, f"params-rank{trainer.comm.rank}.npz"), **arrays)


# The loss curves need matplotlib, which takes seconds to import; these runs are about the numbers.
npgan.viz.plot_losses = lambda *args, **kwargs: None


def train(out, model, steps, batch, *options):
    """options: ``sync`` (synchronised BatchNorm), ``clip=MAX``, ``soft=LOW,HIGH``, ``flip=P``, ``dropout=P`` (in G),
    ``layer_noise=STD`` (in G)."""
    fields = {"clip": ("clip_grad_norm", float), "flip": ("flip_labels", float),
              "dropout": ("g_dropout", float), "layer_noise": ("g_layer_noise", float),
              "soft": ("soft_labels", lambda v: tuple(map(float, v.split(","))))}
    extra = {fields[k][0]: fields[k][1](v) for k, _, v in (o.partition("=") for o in options if "=" in o)}
    trainer = Trainer(config(out, model, int(steps), int(batch), "sync" in options, **extra), progress=False)
    trainer.train()
    save_params(trainer, out)


def resume(out, steps):
    trainer = Trainer.from_checkpoint(os.path.join(out, "checkpoint.npz"), progress=False, steps=int(steps))
    trainer.train()
    save_params(trainer, out)


def averaged_gradients():
    """DistributedOptimizer hands the optimizer the mean of the ranks' gradients (SGD, lr 1, momentum: the first
    step is minus that mean); a parameter with no gradient on any rank keeps none and is not moved. Its state (what
    a checkpoint saves) holds the momentum of the mean gradient, the same on every rank, and loads back."""
    comm = distributed.world()
    w, unused = npgan.nn.Parameter(npgan.zeros(2, 3)), npgan.nn.Parameter(npgan.ones(4))
    opt = distributed.DistributedOptimizer(npgan.optim.SGD([w, unused], lr=1.0, momentum=0.9), comm)
    w.grad = npgan.tensor(np.full((2, 3), comm.rank + 1.0, dtype=np.float32))
    opt.step()
    mean = (comm.size + 1) / 2.0  # mean of 1, 2, ..., size
    np.testing.assert_array_equal(w.data, np.full((2, 3), -mean, dtype=np.float32))
    assert unused.grad is None and (unused.data == 1.0).all()
    state = opt.state_dict()
    assert list(state["state"]) == [0] and state["param_groups"][0]["params"] == [0, 1]  # no moment for `unused`
    assert state["param_groups"][0]["lr"] == 1.0 and state["param_groups"][0]["momentum"] == 0.9
    np.testing.assert_array_equal(state["state"][0]["momentum_buffer"], np.full((2, 3), mean, dtype=np.float32))
    fresh = npgan.nn.Parameter(npgan.zeros(2, 3)), npgan.nn.Parameter(npgan.ones(4))
    again = distributed.DistributedOptimizer(npgan.optim.SGD(list(fresh), lr=0.5, momentum=0.0), comm)
    again.load_state_dict(state)
    assert again.optimizer.param_groups[0]["momentum"] == 0.9
    loaded = again.optimizer.state[fresh[0]]["momentum_buffer"]
    np.testing.assert_array_equal(loaded, state["state"][0]["momentum_buffer"])


def collectives():
    averaged_gradients()
    sync_bn()


def sync_bn():
    """Forward, input gradient and weight gradient of SyncBatchNorm on this rank's shard equal those of one
    BatchNorm over the whole batch (float64, so only rounding separates them)."""
    comm = distributed.world()
    rng = np.random.default_rng(0)
    x_all = rng.standard_normal((8, 3, 4, 4)) * 3.0 + 1.0
    upstream = rng.standard_normal((8, 3, 4, 4))
    n = 8 // comm.size
    shard = slice(comm.rank * n, (comm.rank + 1) * n)

    def run(layer, x, c):
        x = npgan.tensor(x, requires_grad=True)
        y = layer(x)
        (y * npgan.tensor(c)).sum().backward()
        return y.data, x.grad.data, layer.weight.grad.data, layer.running_var.data

    whole = run(npgan.nn.BatchNorm2d(3).double(), x_all, upstream)
    synced = distributed.convert_sync_batchnorm(npgan.nn.BatchNorm2d(3).double(), comm)
    y, gx, gw, running_var = run(synced, x_all[shard], upstream[shard])
    gw = comm.allreduce_sum_(gw.copy())  # each rank holds its share of the weight gradient
    np.testing.assert_allclose(y, whole[0][shard], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, whole[1][shard], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, whole[2], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(running_var, whole[3], rtol=1e-10)
    print(f"rank {comm.rank}: collectives ok", flush=True)


def fail(out, step, kind="raise"):
    trainer = Trainer(config(out, "gan", 50, 64), progress=False)
    original = trainer.train_step

    def train_step():
        failing = trainer.comm.rank == 1 and trainer.step + 1 == int(step)
        if failing and kind == "raise":
            raise ValueError("injected failure")
        row = original()
        if failing:  # this rank alone: the others' losses stay finite
            row["loss_d"] = float("nan")
        return row

    trainer.train_step = train_step
    trainer.train()


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    {"train": train, "resume": resume, "collectives": collectives, "fail": fail}[command](*arguments)
