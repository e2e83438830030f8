"""MuJoCo helpers that env-card expressions may call to read state by name.

They are bound to one unwrapped env (names resolved to ids once and cached), so a card can
say ``body_pos('torso')`` instead of hard-coding array offsets that differ between models.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np


def quat_to_euler(q: Any) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in radians from a MuJoCo quaternion (w, x, y, z)."""
    w, x, y, z = (float(v) for v in q)
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    s = max(-1.0, min(1.0, 2 * (w * y - z * x)))
    pitch = math.asin(s)
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, pitch, yaw


def up_z(q: Any) -> float:
    """z component of the body's own z axis: 1 upright, 0 on its side, -1 upside down."""
    w, x, y, z = (float(v) for v in q)
    return 1.0 - 2.0 * (x * x + y * y)


_ARRAYS = (
    "qpos", "qvel", "qacc", "act", "ctrl", "xpos", "xquat", "xipos", "xmat", "cvel", "cfrc_ext",
    "cfrc_int", "site_xpos", "site_xmat", "geom_xpos", "sensordata", "subtree_com", "qfrc_actuator",
)


class DataView:
    """``data`` as card expressions see it: MjData's array attributes fetched once.

    The binding's properties are views over MjData's fixed buffers, but building the view costs
    about a microsecond per access; a card reads several per step. Anything not cached (scalars
    such as ``time``) is read live from the real MjData.
    """

    def __init__(self, data: Any) -> None:
        self._data = data
        for name in _ARRAYS:
            if hasattr(data, name):
                setattr(self, name, getattr(data, name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)


def helpers(env: Any) -> dict[str, Callable[..., Any]]:
    """Name-based accessors for a MuJoCo env; an empty set of MuJoCo helpers for other envs."""
    out: dict[str, Callable[..., Any]] = {"quat_to_euler": quat_to_euler, "up_z": up_z}
    model = getattr(env, "model", None)
    data = getattr(env, "data", None)
    if model is None or data is None or not hasattr(model, "nbody"):
        return out
    import mujoco

    ids: dict[tuple[int, str], int] = {}

    def _id(kind: int, name: str) -> int:
        key = (kind, name)
        if key not in ids:
            i = mujoco.mj_name2id(model, kind, name)
            if i < 0:
                raise KeyError(f"no {mujoco.mjtObj(kind).name[7:].lower()} named {name!r}")
            ids[key] = i
        return ids[key]

    body, site, geom = mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_SITE, mujoco.mjtObj.mjOBJ_GEOM
    # The binding's array properties are views over MjData's fixed buffers: fetch them once,
    # since each property access costs about a microsecond on the per-step path.
    xpos, xquat, xipos = data.xpos, data.xquat, data.xipos
    site_xpos, geom_xpos, cfrc_ext = data.site_xpos, data.geom_xpos, data.cfrc_ext
    out.update(
        body_pos=lambda name: xpos[_id(body, name)],
        body_quat=lambda name: xquat[_id(body, name)],
        body_com=lambda name: xipos[_id(body, name)],
        site_pos=lambda name: site_xpos[_id(site, name)],
        geom_pos=lambda name: geom_xpos[_id(geom, name)],
        body_contact_force=lambda name: cfrc_ext[_id(body, name)],
        mass_center=lambda: np.sum(model.body_mass[:, None] * data.xipos, 0) / np.sum(model.body_mass),
    )
    return out


# ---------------------------------------------------------------------------------------------
# MuJoCo's compiler warnings

#: gymnasium's own half_cheetah.xml (HalfCheetah-v5) still uses ``settotalmass``; MuJoCo 3.3+
#: prints this once per model compiled, i.e. in every run and every sandboxed job. We cannot
#: edit gymnasium's XML, and a copy with rescaled densities would not be bit-identical physics.
SETTOTALMASS_WARNING = "compiler attribute 'settotalmass' is deprecated"


def mujoco_warning(message: str) -> None:
    """Our handler for MuJoCo's warnings: drops exactly the settotalmass deprecation and prints
    every other warning to stderr as MuJoCo's default handler does."""
    if message.startswith(SETTOTALMASS_WARNING):
        return
    import sys

    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def install_warning_filter() -> None:
    """Route MuJoCo's warnings through :func:`mujoco_warning` (idempotent; before gym.make)."""
    try:
        import mujoco
    except ImportError:  # pragma: no cover - mujoco is a dependency
        return
    if mujoco.get_mju_user_warning() is not mujoco_warning:
        mujoco.set_mju_user_warning(mujoco_warning)
