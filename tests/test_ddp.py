"""``python -m bigtut.train``: two processes under torchrun (gloo, CPU) make the steps one process makes; a run
killed at a step the test picks resumes to the same weights; bad input is refused before anything is written.

Runs in one process call :func:`bigtut.train.main` in the test's own process (no launch cost); runs in two
start ``python -m torch.distributed.run --standalone --nproc_per_node=2`` in a subprocess. Everything is float64
with dropout 0 (dropout masks differ between ranks by design), on a tiny GPT: 2 layers, width 32, context 32.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DistributedSampler

from bigtut.distributed import LMWindows, rank_batch, shard_indices
from bigtut.gpt import GPT, GPTConfig
from bigtut.runtime import seed_everything
from bigtut.train import main
from bigtut.training import History, checkpoint_metadata, load_checkpoint

TINY = ["--n-layer", "2", "--n-head", "2", "--d-model", "32", "--block-size", "32", "--dtype", "float64",
        "--lr", "3e-3", "--no-progress"]
ROOT = Path(__file__).resolve().parent.parent


def gpt_args(out: Path, *extra: str) -> list[str]:
    return ["gpt", "--out", str(out), *TINY, *extra]


def torchrun(nproc: int, args: list[str], **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "bigtut.train", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"torchrun failed ({process.returncode}):\n{out}\n{err[-3000:]}"
    return out


def max_weight_difference(a: Path, b: Path) -> float:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def losses(folder: Path) -> list[float]:
    import json

    return json.loads((folder / "history.json").read_text())["train_loss"]


# ------------------------------------------------------------------------------------------------- data order
def test_rank_batches_are_the_one_process_batch_and_shards_match_the_sampler():
    data = LMWindows(torch.arange(2000), block_size=32)  # 62 windows
    batch, world = 12, 2
    for epoch in (0, 3):
        one = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=5, drop_last=True)
        one.set_epoch(epoch)
        whole = list(one)
        for k in range(len(data) // batch):
            union = []
            for rank in range(world):
                sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=5, drop_last=True)
                sampler.set_epoch(epoch)
                assert list(sampler) == shard_indices(len(data), rank, world, seed=5, epoch=epoch)
                union += rank_batch(list(sampler), k, batch // world)
            assert sorted(union) == sorted(whole[k * batch:(k + 1) * batch])


# ------------------------------------------------------------------------------------------------- equality
def test_one_ddp_step_on_two_ranks_equals_one_step_in_one_process(tmp_path):
    # one process takes the whole batch of 8 in one pass, or accumulates 4 micro-batches of 2; the two ranks
    # take 4 samples each in one pass
    assert main(gpt_args(tmp_path / "whole", "--steps", "1", "--batch-size", "8")) == 0
    assert main(gpt_args(tmp_path / "one", "--steps", "1", "--batch-size", "8", "--micro-batch-size", "2")) == 0
    finish(torchrun(2, gpt_args(tmp_path / "two", "--steps", "1", "--batch-size", "8")))
    assert max_weight_difference(tmp_path / "whole", tmp_path / "two") <= 1e-6
    assert max_weight_difference(tmp_path / "one", tmp_path / "two") <= 1e-6
    seed_everything(0)  # the trainer's initial weights
    start = GPT(GPTConfig(**checkpoint_metadata(tmp_path / "one" / "model.safetensors")["config"])).double()
    moved = load_file(tmp_path / "two" / "model.safetensors")["blocks.0.attn.attn.out_proj.weight"]
    assert not torch.equal(moved, start.state_dict()["blocks.0.attn.attn.out_proj.weight"]), "no step was made"


def test_a_short_run_on_two_ranks_gives_the_one_process_loss_curve(tmp_path):
    args = ["--steps", "8", "--batch-size", "8", "--warmup-steps", "2", "--checkpoint-every", "3"]
    assert main(gpt_args(tmp_path / "one", *args)) == 0
    finish(torchrun(2, gpt_args(tmp_path / "two", *args)))
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 8 and one[-1] < one[0]
    assert max(abs(a - b) for a, b in zip(one, two)) <= 1e-9
    assert max_weight_difference(tmp_path / "one", tmp_path / "two") <= 1e-6
    # the file is the notebooks' checkpoint format: it loads into the course's GPT
    model = GPT(GPTConfig(**checkpoint_metadata(tmp_path / "two" / "model.safetensors")["config"]))
    assert load_checkpoint(model, tmp_path / "two" / "model.safetensors")["step"] == 8


def test_a_run_killed_at_a_random_step_resumes_to_the_uninterrupted_weights(tmp_path):
    steps, kill_after = 40, random.randint(2, 15)
    args = ["--steps", str(steps), "--batch-size", "8", "--warmup-steps", "5", "--checkpoint-every", "1",
            "--log-every", "1"]
    run = torchrun(2, gpt_args(tmp_path / "killed", *args))
    for line in run.stdout:
        if line.startswith(f"step {kill_after} "):
            launcher = psutil.Process(run.pid)
            workers = launcher.children(recursive=True)
            # torchrun starts each worker in a session of its own; on Linux the workers ask the kernel to kill
            # them when torchrun dies (bigtut/train/__main__.py), so killing torchrun alone must stop the run
            for process in ([launcher] if sys.platform == "linux" else [*workers, launcher]):
                process.kill()
            break
    run.wait(timeout=60)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "workers outlived torchrun"
    assert run.returncode == -signal.SIGKILL, f"the run ended before the kill at step {kill_after}"
    reached = len(losses(tmp_path / "killed"))
    assert 1 <= reached < steps
    shutil.copytree(tmp_path / "killed", tmp_path / "killed_copy")
    out = finish(torchrun(2, gpt_args(tmp_path / "killed", *args)))  # the same command again
    assert f"resuming from step {reached}" in out or f"resuming from step {reached + 1}" in out
    assert main(gpt_args(tmp_path / "whole", *args)) == 0  # uninterrupted, one process
    assert max_weight_difference(tmp_path / "killed", tmp_path / "whole") <= 1e-6
    assert len(losses(tmp_path / "killed")) == steps
    assert max(abs(a - b) for a, b in zip(losses(tmp_path / "killed"), losses(tmp_path / "whole"))) <= 1e-9
    assert not list((tmp_path / "killed").glob(".*.tmp-*")), "temporary files were left behind"
    # the process count is not a setting of the run: the killed two-process run also resumes in one process
    assert main(gpt_args(tmp_path / "killed_copy", *args)) == 0
    assert max_weight_difference(tmp_path / "killed_copy", tmp_path / "whole") <= 1e-6


def test_bert_masks_are_a_function_of_the_sample_and_two_ranks_equal_one_process(tmp_path):
    bert = ["bert", "--n-layer", "1", "--n-head", "2", "--d-model", "32", "--dtype", "float64", "--no-progress",
            "--steps", "3", "--batch-size", "8", "--warmup-steps", "1"]
    # one process in micro-batches of 2: their masked-token counts differ, so a mean of means would not agree
    assert main([*bert, "--out", str(tmp_path / "one"), "--micro-batch-size", "2"]) == 0
    finish(torchrun(2, [*bert, "--out", str(tmp_path / "two")]))
    assert max_weight_difference(tmp_path / "one", tmp_path / "two") <= 1e-6
    assert max(abs(a - b) for a, b in zip(losses(tmp_path / "one"), losses(tmp_path / "two"))) <= 1e-9

    from bigtut.train.cli import parser
    from bigtut.train.tasks import build_task

    args = parser().parse_args(bert[:1] + ["--out", "x", "--block-size", "64", "--d-model", "32", "--n-layer", "1",
                                           "--n-head", "2"])
    data = build_task(args).dataset
    alone = data.batch([5], epoch=1, seed=0)
    together = data.batch([7, 5, 9], epoch=1, seed=0)
    width = alone[0].shape[1]
    for a, b in zip(alone, together):
        assert torch.equal(a[0, :width] if a.dim() == 2 else a[0], b[1, :width] if b.dim() == 2 else b[1])
    assert not torch.equal(alone[3], data.batch([5], epoch=2, seed=0)[3]), "a new epoch draws a new mask"


# ------------------------------------------------------------------------------------------------- bad input
def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture
def finished_run(tmp_path):
    folder = tmp_path / "run"
    assert main(gpt_args(folder, "--steps", "2", "--batch-size", "4")) == 0
    return folder


def test_a_process_count_that_does_not_divide_the_batch_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    assert main(gpt_args(tmp_path / "out", "--steps", "2", "--batch-size", "8")) == 2
    err = capsys.readouterr().err
    assert "--batch-size 8 (the global batch) is not divisible by the 3 processes" in err
    assert "use a process count in [1, 2, 4, 8]" in err
    assert not (tmp_path / "out").exists()


def test_a_micro_batch_that_does_not_divide_the_per_process_batch_is_refused(tmp_path, capsys):
    assert main(gpt_args(tmp_path / "out", "--batch-size", "8", "--micro-batch-size", "3")) == 2
    assert "use one of [1, 2, 4, 8]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_from_a_missing_folder_is_refused(tmp_path, capsys):
    assert main(gpt_args(tmp_path / "out", "--resume", str(tmp_path / "nowhere"), "--steps", "2")) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    assert main(gpt_args(tmp_path / "out", "--resume", str(tmp_path / "empty"), "--steps", "2")) == 2
    assert "no checkpoint in" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_checkpoint_is_refused_and_nothing_is_overwritten(finished_run, capsys, damage):
    state = finished_run / "train_state.safetensors"
    data = bytearray(state.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-100] ^= 0xFF  # one byte inside the last tensor
    state.write_bytes(bytes(data))
    before = snapshot(finished_run)
    assert main(gpt_args(finished_run, "--steps", "4", "--batch-size", "4")) == 2
    err = capsys.readouterr().err
    assert ("is unreadable" if damage == "truncate" else "is damaged") in err and "delete" in err
    assert snapshot(finished_run) == before


def test_resuming_with_other_settings_is_refused(finished_run, capsys):
    before = snapshot(finished_run)
    assert main(gpt_args(finished_run, "--steps", "2", "--batch-size", "4", "--lr", "1e-3")) == 2
    err = capsys.readouterr().err
    assert "other settings (lr: stored 0.003, asked 0.001)" in err and "choose another --out" in err
    assert snapshot(finished_run) == before


def test_resume_from_another_folder_writes_its_outputs_into_out(finished_run, tmp_path):
    out = tmp_path / "copy"
    assert main(gpt_args(out, "--resume", str(finished_run), "--steps", "2", "--batch-size", "4")) == 0
    assert max_weight_difference(out, finished_run) == 0.0
    assert losses(out) == losses(finished_run) and len(losses(out)) == 2


def test_a_finished_run_resumed_with_more_steps_is_refused_but_the_same_command_is_a_no_op(finished_run, capsys):
    assert main(gpt_args(finished_run, "--steps", "3", "--batch-size", "4")) == 2
    assert "steps: stored 2, asked 3" in capsys.readouterr().err
    before = snapshot(finished_run)
    assert main(gpt_args(finished_run, "--steps", "2", "--batch-size", "4")) == 0
    assert snapshot(finished_run) == before
    assert History(**__import__("json").loads((finished_run / "history.json").read_text())).step == [1, 2]


def test_a_kill_between_the_train_state_and_the_model_file_is_repaired_by_the_same_command(finished_run):
    # killed after train_state.safetensors of the last step was written, before model.safetensors / history.json
    from safetensors.torch import load_file as load

    state = load(finished_run / "train_state.safetensors")
    (finished_run / "model.safetensors").unlink()
    (finished_run / "history.json").write_text('{"step": [1], "train_loss": [4.0]}')  # the previous checkpoint's
    assert main(gpt_args(finished_run, "--steps", "2", "--batch-size", "4")) == 0
    assert checkpoint_metadata(finished_run / "model.safetensors")["step"] == 2
    weights = load(finished_run / "model.safetensors")
    assert weights and all(torch.equal(weights[k], state["model." + k]) for k in weights)
    assert History(**__import__("json").loads((finished_run / "history.json").read_text())).step == [1, 2]


def test_a_folder_holding_another_model_is_not_overwritten(tmp_path, capsys):
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"somebody's weights")
    (folder / "config.json").write_text("{}")
    before = snapshot(folder)
    assert main(gpt_args(folder, "--steps", "2", "--batch-size", "4")) == 2
    assert "choose another --out" in capsys.readouterr().err
    assert snapshot(folder) == before


def test_an_out_folder_below_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(gpt_args(tmp_path / "afile" / "run", "--steps", "2", "--batch-size", "4")) == 2
    assert "is a file; choose a folder" in capsys.readouterr().err


def test_killing_torchrun_while_its_workers_start_leaves_no_worker_behind(tmp_path):
    run = torchrun(2, gpt_args(tmp_path / "early", "--steps", "400", "--batch-size", "4"))
    launcher = psutil.Process(run.pid)
    workers: list = []
    for _ in range(200):  # until both workers exist: they are starting Python, importing torch, reading data
        workers = [p for p in launcher.children(recursive=True) if "bigtut.train" in " ".join(p.cmdline())]
        if len(workers) == 2:
            break
        time.sleep(0.02)
    assert len(workers) == 2, "torchrun started no workers"
    launcher.kill()
    run.wait(timeout=30)
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"{len(alive)} worker(s) outlived torchrun"
