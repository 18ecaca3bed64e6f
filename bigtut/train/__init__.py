"""The command-line trainer: ``python -m bigtut.train gpt ...``, in one process or under ``torchrun`` (DDP).

:mod:`bigtut.train.cli` parses the command, :mod:`bigtut.train.tasks` builds the model and its data,
:mod:`bigtut.train.loop` trains (data-parallel when launched by torchrun), :mod:`bigtut.train.state` writes
checkpoints atomically and reads them back for a resumed run.
"""

from bigtut.train.cli import main

__all__ = ["main"]
