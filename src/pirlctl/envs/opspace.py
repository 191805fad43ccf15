"""gym_hil's operational-space controller, the same maths with its per-call overhead taken out.

gym_hil steps the physics 50 times per env step (control_dt 0.1 s, physics_dt 0.002 s) and calls its Python
``opspace`` before each physics step. That call rebuilds its gain arrays, allocates its Jacobian and mass-matrix
buffers and does its quaternion algebra on 4-element numpy arrays every time: on this CPU it costs about three
times the physics step it controls (bench/opspace_speed.py). :class:`OpspaceController` computes the same torque
(gym_hil's defaults: position and orientation gains 200, damping ratio 1, nullspace stiffness 0.5, gravity
compensation, no acceleration limits) with the gains built once, the buffers reused and the scalar quaternion
algebra in plain floats. tests/unit/test_opspace.py checks it against gym_hil's function on random states.

:func:`install_fast_controller` swaps it into one env instance's ``apply_action``; the task, its actions and its
physics are unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

POS_GAIN = 200.0  # gym_hil's opspace defaults, which its envs use
ORI_GAIN = 200.0
DAMPING_RATIO = 1.0
NULLSPACE_STIFFNESS = 0.5
MAX_GRIPPER_COMMAND = 255.0  # gym_hil.mujoco_gym_env.MAX_GRIPPER_COMMAND


class OpspaceController:
    """``tau = opspace(model, data, site_id, dof_ids, pos=..., ori=quat, joint=..., gravity_comp=True)``."""

    def __init__(self, model: Any, site_id: int, dof_ids: np.ndarray) -> None:
        self.model = model
        self.site_id = int(site_id)
        self.dof_ids = np.asarray(dof_ids, dtype=np.int64)
        n = len(self.dof_ids)
        self.kp_pos = POS_GAIN
        self.kd_pos = DAMPING_RATIO * 2.0 * math.sqrt(POS_GAIN)
        self.kp_ori = ORI_GAIN
        self.kd_ori = DAMPING_RATIO * 2.0 * math.sqrt(ORI_GAIN)
        self.kp_joint = NULLSPACE_STIFFNESS
        self.kd_joint = DAMPING_RATIO * 2.0 * math.sqrt(NULLSPACE_STIFFNESS)
        self._jac = np.zeros((6, model.nv))
        self._full_m = np.zeros((model.nv, model.nv))
        self._eye = np.eye(n)
        self._mat = np.zeros(9)
        self._quat = np.zeros(4)
        # gym_hil's arm dofs are the model's first ones: slices (views) then replace fancy indexing (copies)
        first = int(self.dof_ids[0])
        contiguous = bool(np.array_equal(self.dof_ids, np.arange(first, first + n)))
        self._dof: slice | np.ndarray = slice(first, first + n) if contiguous else self.dof_ids
        self._ix: tuple[Any, ...] = (self._dof, self._dof) if contiguous else np.ix_(self.dof_ids, self.dof_ids)

    def __call__(self, data: Any, pos: np.ndarray, quat_des: np.ndarray, q_des: np.ndarray) -> np.ndarray:
        import mujoco

        model, site, dof = self.model, self.site_id, self._dof
        q = data.qpos[dof]
        dq = data.qvel[dof]

        jac = self._jac
        mujoco.mj_jacSite(model, data, jac[:3], jac[3:], site)
        J = jac[:, dof]  # noqa: N806
        twist = J @ dq  # (dx, w)

        # position PD
        ddx_dw = np.empty(6)
        ddx_dw[:3] = -self.kp_pos * (data.site_xpos[site] - pos) - self.kd_pos * twist[:3]

        # orientation PD: error = axis-angle of quat * conj(quat_des), with quat on quat_des's hemisphere
        mujoco.mju_mat2Quat(self._quat, data.site_xmat[site])
        w1, x1, y1, z1 = self._quat.tolist()
        w2, x2, y2, z2 = quat_des.tolist()
        if w1 * w2 + x1 * x2 + y1 * y2 + z1 * z2 < 0.0:
            w1, x1, y1, z1 = -w1, -x1, -y1, -z1
        x2, y2, z2 = -x2, -y2, -z2
        w = w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2
        x = w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2
        y = w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2
        z = w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        if norm < 1e-10:
            ori_err = (0.0, 0.0, 0.0)
        else:
            w, x, y, z = w / norm, x / norm, y / norm, z / norm
            angle = 2.0 * math.acos(min(1.0, max(-1.0, w)))
            sin_half = math.sqrt(max(0.0, 1.0 - w * w))
            scale = angle if sin_half < 1e-10 else angle / sin_half
            ori_err = (scale * x, scale * y, scale * z)
        ddx_dw[3:] = -self.kp_ori * np.asarray(ori_err) - self.kd_ori * twist[3:]

        # task-space inertia
        mujoco.mj_fullM(model, self._full_m, data.qM)
        M_inv = np.linalg.inv(self._full_m[self._ix])  # noqa: N806
        Mx_inv = J @ M_inv @ J.T  # noqa: N806
        singular = abs(np.linalg.det(Mx_inv)) < 1e-2
        Mx = np.linalg.pinv(Mx_inv, rcond=1e-2) if singular else np.linalg.inv(Mx_inv)  # noqa: N806

        tau = J.T @ (Mx @ ddx_dw)
        ddq = -self.kp_joint * (q - q_des) - self.kd_joint * dq
        Jnull = M_inv @ J.T @ Mx  # noqa: N806
        tau += (self._eye - J.T @ Jnull.T) @ ddq
        tau += data.qfrc_bias[dof]
        return tau


class GymHilOpspace:
    """gym_hil's own ``opspace`` behind :class:`OpspaceController`'s call signature, called as gym_hil's
    ``apply_action`` calls it: the reference the copy is checked and benchmarked against."""

    def __init__(self, model: Any, site_id: int, dof_ids: np.ndarray) -> None:
        from gym_hil.controllers import opspace

        self._opspace = opspace
        self.model, self.site_id, self.dof_ids = model, int(site_id), np.asarray(dof_ids)

    def __call__(self, data: Any, pos: np.ndarray, quat_des: np.ndarray, q_des: np.ndarray) -> np.ndarray:
        return self._opspace(
            model=self.model,
            data=data,
            site_id=self.site_id,
            dof_ids=self.dof_ids,
            pos=pos,
            ori=quat_des,
            joint=q_des,
            gravity_comp=True,
        )


def matches_gym_hil(base_env: Any, controller: Any, trials: int = 8, rtol: float = 1e-9) -> bool:
    """Whether ``controller`` gives gym_hil's own ``opspace`` torque on ``trials`` random arm states (a scratch
    copy of the simulator state; the env is untouched). A gym_hil release that changes its controller fails this."""
    import mujoco

    model = base_env._model
    reference = GymHilOpspace(model, controller.site_id, controller.dof_ids)
    data = mujoco.MjData(model)
    dof = controller.dof_ids
    home = np.asarray(base_env._home_position, dtype=np.float64)
    rng = np.random.default_rng(0)
    for _ in range(trials):
        data.qpos[dof] = home + rng.normal(0.0, 0.3, len(dof))
        data.qvel[dof] = rng.normal(0.0, 0.5, len(dof))
        data.mocap_pos[0] = base_env._data.mocap_pos[0] + rng.normal(0.0, 0.05, 3)
        data.mocap_quat[0] = base_env._data.mocap_quat[0]
        mujoco.mj_forward(model, data)
        ref = reference(data, data.mocap_pos[0], data.mocap_quat[0], home)
        got = controller(data, data.mocap_pos[0], data.mocap_quat[0], home)
        if not np.allclose(got, ref, rtol=rtol, atol=rtol * max(1.0, float(np.abs(ref).max()))):
            return False
    return True


def install_fast_controller(base_env: Any, controller: Any = None) -> bool:
    """Replace ``base_env.apply_action`` (gym_hil ``FrankaGymEnv``) by the same loop driving
    :class:`OpspaceController`; the mocap target, gripper command and substep count are gym_hil's own.

    Returns False, leaving gym_hil's loop in place, when the env overrides ``apply_action``, a gym_hil release no
    longer has the module, function or attributes this copy reads, or the controller does not reproduce gym_hil's
    torques (:func:`matches_gym_hil`). ``controller`` (tests) replaces :class:`OpspaceController` with any callable
    of the same signature and ``site_id``/``dof_ids``."""
    import mujoco

    try:
        from gym_hil.mujoco_gym_env import FrankaGymEnv

        if type(base_env).apply_action is not FrankaGymEnv.apply_action:
            return False
        if controller is None:
            controller = OpspaceController(base_env._model, base_env._pinch_site_id, base_env._panda_dof_ids)
        if not matches_gym_hil(base_env, controller):
            return False
        model, data = base_env._model, base_env._data
        gripper, arm = base_env._gripper_ctrl_id, base_env._panda_ctrl_ids
        home = np.asarray(base_env._home_position, dtype=np.float64)
        lo, hi = base_env._cartesian_bounds
        substeps = base_env._n_substeps
    except (ImportError, AttributeError, TypeError):
        return False

    def apply_action(action: np.ndarray) -> None:
        x, y, z, _rx, _ry, _rz, grasp_command = action
        data.mocap_pos[0] = np.clip(data.mocap_pos[0] + np.asarray([x, y, z]), lo, hi)
        g = data.ctrl[gripper] / MAX_GRIPPER_COMMAND
        data.ctrl[gripper] = np.clip(g + grasp_command, 0.0, 1.0) * MAX_GRIPPER_COMMAND
        target, quat = data.mocap_pos[0], data.mocap_quat[0]
        for _ in range(substeps):
            data.ctrl[arm] = controller(data, target, quat, home)
            mujoco.mj_step(model, data)

    base_env.apply_action = apply_action
    return True
