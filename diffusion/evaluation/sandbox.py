"""Run an untrusted program in a child process and say how it ended.

Layers: a fresh temporary working directory; resource limits set in the
child before exec (address space, CPU seconds, file size, open files); a
wall-clock timeout that kills the child's whole process group; an audit hook
in the child (`sandbox_guard.py`) that refuses network, new processes and
writes outside the directory; a minimal environment. Output goes to files
capped by the file-size limit, so a program that prints forever cannot fill
the parent's memory. Not a security boundary against a determined attacker
(that needs a container); enough that a model's bad completion is stopped,
scored as a failure, and the evaluation carries on.
"""

from __future__ import annotations

import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from diffusion.evaluation import sandbox_guard

Status = Literal["passed", "failed", "timeout", "memory", "refused"]


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0
    memory_bytes: int = 1 << 30
    file_bytes: int = 8 << 20
    open_files: int = 64


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Verdict:
    status: Status
    detail: str = ""  # the last line of the program's error output, if any

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _limit_child(limits: Limits):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        cpu = int(limits.seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def classify(returncode: int, stderr: str, timed_out: bool, completed: bool = True) -> Verdict:
    """How a finished child ended, from its exit code, the tail of its error output and
    whether it ran to its end."""
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return Verdict("timeout", last)
    if returncode == 0:
        return Verdict("passed") if completed else Verdict("failed", "exited before its tests finished")
    if sandbox_guard.MARKER in stderr:
        return Verdict("refused", last)
    if "MemoryError" in stderr:
        return Verdict("memory", last)
    return Verdict("failed", last or f"exit code {returncode}")


def run_program(source: str, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="unmask-eval-") as work:
        program = Path(work) / "program.py"
        program.write_text(source, encoding="utf-8")
        out, err = Path(work) / "stdout.txt", Path(work) / "stderr.txt"
        nonce = secrets.token_hex(16)
        env = {
            "PATH": os.defpath,
            "HOME": work,
            "TMPDIR": work,
            "PYTHONHASHSEED": "0",
            "LC_ALL": "C.UTF-8",
            sandbox_guard.NONCE_VARIABLE: nonce,
        }
        with out.open("wb") as stdout, err.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-I", "-S", sandbox_guard.__file__, str(program)],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group, killed whole on timeout
                preexec_fn=_limit_child(limits),
            )
            timed_out = False
            try:
                child.wait(timeout=limits.seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.wait()
        tail = err.read_bytes()[-4000:].decode("utf-8", "replace")
        completed = out.read_bytes()[-200:].rstrip().endswith(nonce.encode())
        return classify(child.returncode, tail, timed_out, completed)
