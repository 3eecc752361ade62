"""Runs inside the sandbox's child process: installs an audit hook, then runs the program.

Usage: python -I sandbox_guard.py PROGRAM. The hook (PEP 578; it cannot be
removed once added) refuses network sockets, new processes, native code
loading, and any file change outside the working directory. It is one layer:
the parent also sets resource limits and a wall-clock timeout. When the
program has run to its end, the guard prints the nonce the parent gave it, so
that a program that exits early with status 0 does not pass.
"""

import os
import sys

MARKER = "unmask-sandbox-refused"
DENIED = frozenset(
    {
        "socket.__new__",
        "socket.connect",
        "socket.bind",
        "socket.getaddrinfo",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.cdata",
        "pty.spawn",
        "webbrowser.open",
    }
)
# Events whose string arguments are paths the program would change.
CHANGES = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.replace",
        "os.rmdir",
        "os.mkdir",
        "os.symlink",
        "os.link",
        "os.chmod",
        "os.chown",
        "os.truncate",
        "os.utime",
        "os.chdir",
        "shutil.rmtree",
        "shutil.move",
        "shutil.copyfile",
    }
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Where each change event carries its directory descriptors (CPython's audit event table). A
# path relative to a descriptor cannot be checked from the path alone, so any is refused.
DIR_FD_ARGS = {
    "os.remove": (1,),
    "os.rmdir": (1,),
    "os.rename": (2, 3),
    "os.replace": (2, 3),
    "os.link": (2, 3),
    "os.mkdir": (2,),
    "os.symlink": (2,),
    "os.chmod": (2,),
    "os.chown": (3,),
    "os.utime": (3,),
}
# The variable carrying the completion nonce; removed before the program runs.
NONCE_VARIABLE = "UNMASK_SANDBOX_NONCE"


def make_hook(root: str):
    def inside(path) -> bool:
        if isinstance(path, int):
            return True  # an open descriptor: it was checked when it was opened
        resolved = os.path.realpath(os.fsdecode(path))
        return resolved == root or resolved.startswith(root + os.sep)

    def refuse(event: str, detail) -> None:
        raise PermissionError(f"{MARKER}: {event} {detail!r}")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, _mode, flags = args
            if path is None or isinstance(path, int) or inside(path):
                return
            if isinstance(flags, int) and flags & WRITE_FLAGS:
                refuse(event, path)
            # A directory descriptor from outside would let `dir_fd=` calls and `os.open(name,
            # dir_fd=...)` (whose audit event does not carry the descriptor) write there.
            if os.path.isdir(path):
                refuse(event, path)
        elif event in DENIED:
            refuse(event, args[:1])
        elif event in CHANGES:
            for index in DIR_FD_ARGS.get(event, ()):
                if index < len(args) and args[index] is not None:
                    refuse(event, f"dir_fd={args[index]}")
            for arg in args:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                    refuse(event, arg)

    return hook


def main() -> None:
    program = sys.argv[1]
    nonce = os.environ.pop(NONCE_VARIABLE, "")
    with open(program, encoding="utf-8") as file:
        code = compile(file.read(), program, "exec")
    sys.addaudithook(make_hook(os.path.realpath(os.getcwd())))
    exec(code, {"__name__": "__main__", "__file__": program})
    # Reached only when the whole program ran: an early `sys.exit(0)` or `os._exit(0)` before
    # the tests leaves exit code 0 without this line, and is not a pass.
    print(f"\n{nonce}", flush=True)


if __name__ == "__main__":
    main()
