"""``python -m bigtut.train`` (see :mod:`bigtut.train.cli`).

Under torchrun, each worker first asks the Linux kernel to kill it when torchrun dies — before importing torch,
which takes a second. torchrun starts each worker in a session of its own, so a ``kill -9`` of torchrun alone
would otherwise leave the workers training (and writing checkpoints), or waiting for the others forever, while
a resumed run starts next to them.
"""

import os
import signal
import sys


def die_with_launcher() -> None:
    """On Linux under torchrun: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, and exit at once if torchrun is already gone."""
    if sys.platform != "linux" or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = f.read()  # torchrun's, or python -m torch.distributed.run's
    except OSError:
        return
    if b"torch" not in parent:  # torchrun died before the request took effect: this worker is an orphan
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    die_with_launcher()
    from bigtut.train.cli import main

    code = main()  # the process group is destroyed and every file is written and closed by now
    if "TORCHELASTIC_RUN_ID" in os.environ:
        # Leave without the interpreter's shutdown: gloo's threads can abort it ("terminate called without an
        # active exception", exit code -6) after a run that succeeded, and torchrun would report a failure.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
