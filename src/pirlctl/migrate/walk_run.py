"""The walk's run-level parts: runtime, algorithm, the top-level fields, and the sweep for fields nobody handled."""

from __future__ import annotations

from typing import Any

from pirlctl.migrate.rules import ACTION_KEY, DROPPED_TOP, LOOPBACK, OPTIONAL_FEATURES, SAC_DECISIONS
from pirlctl.migrate.state import Migration, get, is_empty


def walk_runtime(m: Migration) -> None:
    """Runtime settings LeRobot kept on the policy (learner address, step budget, device) move to ``runtime``."""
    alc = "policy.actor_learner_config"
    host, port = (
        get(m.pol, "actor_learner_config.learner_host"),
        get(m.pol, "actor_learner_config.learner_port"),
    )
    if host is not None:
        m.runtime.learner_host = str(host)
        remote = "" if str(host) in LOOPBACK else "; a non-loopback host needs --allow-remote and PIRL_TOKEN"
        m.change(
            f"{alc}.learner_host",
            host,
            str(host),
            "runtime.learner_host",
            f"runtime settings live in runtime: X-VLA's config has no actor_learner_config{remote}",
        )
    if port is not None:
        m.runtime.learner_port = int(port)
        m.change(f"{alc}.learner_port", port, int(port), "runtime.learner_port", "moved off the policy")
    if (freq := get(m.pol, "actor_learner_config.policy_parameters_push_frequency")) is not None:
        m.change(
            f"{alc}.policy_parameters_push_frequency",
            freq,
            m.runtime.push,
            "runtime.push",
            "SAC pushed weights every N seconds; PPO needs each batch from one policy version, so the learner "
            "pushes after every PPO iteration, tagged with the new version",
        )
    if get(m.pol, "actor_learner_config.queue_get_timeout") is not None:
        m.drop(
            f"{alc}.queue_get_timeout",
            "queue polling inside LeRobot's SAC learner; pirlctl's waits are runtime.batch_timeout_s and "
            "runtime.weights_wait_s",
        )
    if (steps := m.pol.get("online_steps")) is not None:
        m.runtime.total_env_steps = int(steps)
        m.change(
            "policy.online_steps",
            steps,
            int(steps),
            "runtime.total_env_steps",
            "the env-step budget, off the policy",
        )
    if (device := m.pol.get("device")) is not None:
        m.runtime.device = m.runtime.actor_device = str(device)
        m.change(
            "policy.device",
            device,
            str(device),
            "runtime.device, runtime.actor_device",
            "LeRobot's SAC actor and learner both ran on policy.device; pirlctl sets each process's device in "
            "runtime (the learner sets policy.device from it)",
        )


def walk_algorithm(m: Migration) -> None:
    """SAC becomes PI-RL at its defaults; each SAC hyperparameter group is a decision (``SAC_DECISIONS``)."""
    a = m.algorithm
    m.change(
        "algorithm.type",
        get(m.sac, "algorithm.type", "sac (LeRobot's default)"),
        "pi_rl",
        "algorithm",
        "PPO over the flow policy's stochastic denoising chain; every PI-RL hyperparameter starts at its default",
    )
    m.drop_present(
        "algorithm.", {"filled in by LeRobot at run time; pirlctl links algorithm and policy": ["policy_config"]}
    )
    n_exec = a.resolved_n_exec(int(m.policy_cfg.chunk_size), int(m.policy_cfg.n_action_steps))
    for names, targets, why in SAC_DECISIONS:
        paths = {name: path for name in names if (path := m.sac_field(name)) is not None}
        old = {name: get(m.sac, path) for name, path in paths.items()}
        new = {t: getattr(a if t.startswith("algorithm.") else m.runtime, t.split(".", 1)[1]) for t in targets}
        discount = old.get("discount")
        per_chunk = round(float(discount) ** n_exec, 6) if isinstance(discount, (int, float)) else None
        m.must_decide(
            ", ".join(paths.values()) or ", ".join(names),
            old if len(old) != 1 else next(iter(old.values())),
            new if len(new) != 1 else next(iter(new.values())),
            ", ".join(targets),
            why.format(n_exec=n_exec, discount=discount, per_chunk=per_chunk),
        )
    # 0.6.1 keeps the discrete critic's network on both the policy (which owns it) and the algorithm (target).
    discrete = [
        f"{section}.{name}"
        for section, name in (
            ("policy", "num_discrete_actions"),
            ("policy", "discrete_critic_network_kwargs"),
            ("algorithm", "discrete_critic_network_kwargs"),
        )
        if isinstance(m.sac.get(section), dict) and name in m.sac[section]
    ]
    if m.pol.get("num_discrete_actions") is not None:
        m.must_decide(
            ", ".join(discrete),
            {p: get(m.sac, p) for p in discrete},
            None,
            f"policy.output_features.{ACTION_KEY}",
            "SAC's discrete gripper critic has no PI-RL equivalent: the gripper is a continuous dim of the chunk. "
            "gym_hil reads it in [0, 2] (2 closes, 0 opens, 1 holds): the policy's action range and "
            "normalisation must reach 2, or the gripper never closes",
        )
    else:
        for path in discrete:
            m.drop(path, "no discrete gripper head (num_discrete_actions is null)")
    compile_path = m.sac_field("use_torch_compile")
    if compile_path and get(m.sac, compile_path):
        m.must_decide(compile_path, True, None, None, "pirlctl does not torch.compile the flow policy")
    elif compile_path:
        m.drop(compile_path, "off in the SAC run; pirlctl does not compile the flow policy")


def walk_top_level(m: Migration) -> None:
    """The run-level fields: name, seed, output folder, resume, offline dataset, saving and optional features."""
    s = m.sac
    m.job_name = s.get("job_name") if isinstance(s.get("job_name"), str) else None
    m.stays("job_name", m.job_name, "job_name", "the run's name (null: the output folder's name)")
    seed = s.get("seed")
    if isinstance(seed, int):
        m.seed = seed
        m.stays("seed", seed, "seed", "global seed (torch, numpy, python)")
    else:
        m.change("seed", seed, m.seed, "seed", "PI-RL needs an integer seed: PiRLRunConfig's default")
    out = s.get("output_dir")
    if isinstance(out, str) and out:
        m.output_dir = f"{out.rstrip('/')}_pi_rl"
        why = (
            "LeRobot's SAC checkpoints use the same checkpoints/<NNNNNN>/ and last layout; a folder of its own "
            "keeps a PI-RL run (and its resume) from reading or overwriting them"
        )
    else:
        m.output_dir = f"runs/{m.job_name or 'pi_rl'}"
        why = "LeRobot made a timestamped folder at start; pirlctl needs one named in the config"
    m.change("output_dir", out, m.output_dir, "output_dir", why)
    if s.get("resume"):
        m.change("resume", True, False, "resume", "a SAC checkpoint cannot be resumed as a PI-RL run")
    elif "resume" in s:
        m.stays("resume", False, "resume", "a fresh run")
    if isinstance(s.get("dataset"), dict):
        m.must_decide(
            "dataset, online_ratio, mixer",
            {
                "repo_id": get(s, "dataset.repo_id"),
                "root": get(s, "dataset.root"),
                "online_ratio": s.get("online_ratio"),
            },
            None,
            "policy_path",
            "PI-RL is on-policy: no offline buffer, no online/offline mixing. Behaviour-clone (SFT) the flow "
            "policy on this dataset first, then pass the checkpoint with --policy-path",
        )
    else:
        m.drop_present("", {"no offline dataset in the SAC run": ["dataset", "online_ratio", "mixer"]})
    if s.get("save_freq") is not None:
        m.change(
            "save_freq",
            s["save_freq"],
            m.runtime.checkpoint_every,
            "runtime.checkpoint_every",
            "SAC saved every N optimisation steps; pirlctl every N PPO iterations (and always at the end)",
        )
    for name, why in OPTIONAL_FEATURES.items():
        if name not in s:
            continue
        value = s[name]
        on = {"wandb": bool(get(value, "enable")), "job": get(value, "target") is not None}
        if on.get(name, not is_empty(value)):
            m.must_decide(name, value, None, None, why)
        else:
            m.drop(name, "off or empty in the SAC run; no pirlctl equivalent")
    m.drop_present("", DROPPED_TOP)


def walk_leftovers(m: Migration) -> None:
    """Fields this migration does not know (a newer LeRobot, a hand-edited file): never dropped silently."""

    def sweep(path: str, value: Any) -> None:
        if m.covered(path):
            return
        if isinstance(value, dict) and any(s.startswith(f"{path}.") for s in m.seen):
            for key, sub in value.items():  # a section some of whose fields were handled: look inside
                sweep(f"{path}.{key}", sub)
        else:
            m.leftover(path, value)

    for key, value in m.sac.items():
        sweep(key, value)
