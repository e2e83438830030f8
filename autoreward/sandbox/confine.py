"""OS-level confinement of the sandboxed child: Landlock and a private network namespace.

The AST policy (``program.check_source``) is a deny-list and deny-lists have holes, so the
worker also confines itself with the kernel's own mechanisms, unprivileged, before it reads
any generated code (:func:`confine`):

- a fresh **network namespace** (only a downed loopback), as root or through an unprivileged
  user namespace;
- **Landlock** (``landlockpy``, a maintained, dependency-free binding that covers Landlock's
  network rules and scopes, which the older ``landlock`` package lacks): the child may write
  only inside its job directory, read only Python, the installed packages, a few system files
  and the paths its job names, execute nothing but Python itself, bind or connect no TCP port (ABI >= 4), and
  signal or ptrace no process outside its own sandbox (ABI >= 6 for signals, ABI 1 for ptrace),
  and read no other process's ``/proc/<pid>`` (``environ`` included).

What is active is returned as a plain dict (``confinement`` in every job result). A mechanism
can be switched off for debugging with ``AUTOREWARD_CONFINEMENT_OFF=landlock,netns`` in the
parent's environment; ``AUTOREWARD_REQUIRE_CONFINEMENT=1`` (``--require-confinement``) makes the
worker refuse to run a job without all of them.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from pathlib import Path
from typing import Any, Iterable

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

#: mechanisms a job result reports; ``--require-confinement`` needs every one of them
MECHANISMS = ("landlock", "landlock_tcp", "landlock_signals", "netns")

#: system paths every Python process reads: shared libraries, time zones, CPU topology. Of
#: /proc only this process's own folder (``/proc/self`` resolves to it when the rule is made)
#: and machine-wide figures: Landlock's ptrace rule guards /proc/<pid>/mem and cwd of other
#: processes but not their ``environ``, which the file rules must therefore leave out
SYSTEM_READ = (
    "/usr", "/lib", "/lib64", "/lib32", "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat",
    "/proc/sys", "/proc/filesystems", "/proc/loadavg", "/proc/version", "/proc/driver/nvidia", "/sys", "/etc/ld.so.cache", "/etc/ld.so.conf",
    "/etc/ld.so.conf.d", "/etc/localtime", "/etc/timezone", "/etc/passwd", "/etc/group",
    "/etc/nsswitch.conf", "/etc/os-release", "/etc/mime.types", "/etc/glvnd", "/etc/OpenCL",
    "/dev/urandom", "/dev/random",
)
#: a checkout's data folders next to the package (``prompts_io.data_dir``)
DATA_DIRS = ("prompts", "envs")
#: the dynamic loaders that starting a Python subprocess needs (they must be executable)
LOADER_GLOBS = ("/lib*/ld-*.so*", "/lib/*-linux-*/ld-*.so*", "/usr/lib*/ld-*.so*", "/usr/lib/*-linux-*/ld-*.so*")
#: devices a job may write: the null device, and GPUs (CUDA, EGL rendering) where present.
#: Not yet run on a GPU machine under Landlock: if CUDA fails there, AUTOREWARD_CONFINEMENT_OFF
#: =landlock is the way round while the list is completed
DEVICES_RW = ("/dev/null", "/dev/zero", "/dev/dri", "/dev/nvidia*", "/dev/nvidia-caps")


def isolate_network() -> bool:
    """Move into a new, empty network namespace. False where the OS refuses (then say so)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if libc.unshare(CLONE_NEWNET) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return False
    try:  # map ourselves so file ownership still looks right
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError:
        pass
    return True


def python_read_paths() -> list[str]:
    """Where this interpreter and its packages live: prefixes and ``sys.path`` entries.

    A ``sys.path`` entry that is a source checkout holding ``autoreward`` (the parent puts the
    checkout on ``PYTHONPATH``) is narrowed to the package folder and its data folders
    (``prompts``, ``envs``), so the child cannot read the rest of the checkout (a ``.env`` file
    with API keys, other runs)."""
    pkg = Path(__file__).resolve().parents[1]
    out = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(pkg)}
    out |= {str(pkg.parent / d) for d in DATA_DIRS}
    for entry in sys.path:
        p = Path(entry or ".").resolve()
        if p == pkg.parent:
            continue  # the checkout itself: only the package, added above
        out.add(str(p))
    return sorted(out)


def _python_executables() -> list[str]:
    """The interpreter's binary and the ELF loaders that ``execve`` opens to start it."""
    loaders = [g for pat in LOADER_GLOBS for g in glob.glob(pat)]
    return sorted({os.path.realpath(p) for p in [sys.executable, *loaders]})


def _existing(paths: Iterable[str]) -> list[str]:
    """The paths that exist, ``*`` patterns expanded (Landlock rules need an open file)."""
    expanded = [q for p in paths for q in (glob.glob(p) if "*" in p else [p])]
    return [p for p in dict.fromkeys(expanded) if p and os.path.exists(p)]


def apply_landlock(write_dirs: Iterable[str], read_paths: Iterable[str]) -> dict[str, Any]:
    """Restrict this process (and every child and thread it starts later) with Landlock.

    Returns what was enforced; ``{'landlock': False, 'landlock_error': why}`` where the kernel
    or the platform has no Landlock."""
    try:
        import landlockpy as ll
    except ImportError as exc:  # not Linux, or not installed
        return {"landlock": False, "landlock_abi": 0, "landlock_error": f"landlockpy unavailable: {exc}"}
    abi = ll.abi_version()
    if abi < 1:
        return {"landlock": False, "landlock_abi": 0, "landlock_error": "the kernel has no Landlock (Linux >= 5.13 with landlock in the LSM list)"}
    fs = ll.fs_for_abi(abi)
    read = ll.AccessFS.READ_FILE | ll.AccessFS.READ_DIR
    rw = fs & ~ll.AccessFS.EXECUTE
    devices = ll.AccessFS.READ_FILE | ll.AccessFS.WRITE_FILE | ll.AccessFS.IOCTL_DEV | ll.AccessFS.READ_DIR
    file_rights = ll.AccessFS.EXECUTE | ll.AccessFS.WRITE_FILE | ll.AccessFS.READ_FILE | ll.AccessFS.TRUNCATE | ll.AccessFS.IOCTL_DEV
    with ll.Ruleset(handled_fs=fs, handled_net=ll.net_for_abi(abi), scoped=ll.scope_for_abi(abi)) as rules:

        def allow(paths: Iterable[str], access: Any) -> None:
            for p in _existing(paths):  # a rule on a file may grant only file rights (else EINVAL)
                rules.allow_path(p, access if os.path.isdir(p) else access & file_rights)

        allow(write_dirs, rw)
        allow(read_paths, read)
        allow(DEVICES_RW, devices)
        # the one program a job may start: Python itself, with the dynamic loader (glfw, imported
        # by gymnasium's MuJoCo envs, runs ``sys.executable`` to read its version); whatever it
        # starts inherits this confinement
        allow(_python_executables(), read | ll.AccessFS.EXECUTE)
        rules.restrict(ll.RestrictFlag.TSYNC)  # every thread, where the kernel can (ABI >= 8)
        return {
            "landlock": True,
            "landlock_abi": abi,
            "landlock_tcp": bool(rules.handled_net & ll.AccessNet.CONNECT_TCP),
            "landlock_signals": bool(rules.scoped & ll.Scope.SIGNAL),
        }


def confine(job_dir: str, read_paths: Iterable[str], off: Iterable[str] = ()) -> dict[str, Any]:
    """Network namespace first (it writes ``/proc/self/uid_map``), then Landlock.

    ``off``: mechanisms the user switched off (``AUTOREWARD_CONFINEMENT_OFF``)."""
    off = set(off)
    info: dict[str, Any] = {"netns": "netns" not in off and isolate_network()}
    if "landlock" in off:
        info.update(landlock=False, landlock_abi=0, landlock_error="switched off by AUTOREWARD_CONFINEMENT_OFF")
    else:
        info.update(apply_landlock([job_dir], [*SYSTEM_READ, *python_read_paths(), *read_paths]))
    for m in MECHANISMS:
        info.setdefault(m, False)
    return info


def missing(confinement: dict[str, Any]) -> list[str]:
    """The mechanisms of :data:`MECHANISMS` that are not active."""
    return [m for m in MECHANISMS if not confinement.get(m)]
