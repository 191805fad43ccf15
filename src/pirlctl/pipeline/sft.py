"""Behaviour cloning (few-shot SFT) of a flow policy on a LeRobot dataset, with the policy's own flow-matching loss.

The whole (small) dataset is decoded into memory once, with action chunks of ``chunk_size`` from LeRobot's
``delta_timestamps``; training samples minibatches from memory and passes each through the policy's LeRobot
preprocessor (normalisation with the dataset's ``meta/stats.json``), as ``lerobot-train`` does, so a non-identity
normalisation mode is trained in the normalised space. The result is a complete LeRobot policy folder
(``config.json``, ``model.safetensors``, ``policy_preprocessor.json`` / ``policy_postprocessor.json`` and their
state files) that ``policy_path`` points at and LeRobot's own tools load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pirlctl.policies.augment import image_keys, shift_images
from pirlctl.policies.language import LANGUAGE_MASK_KEY
from pirlctl.policies.loading import build_policy
from pirlctl.policies.processors import build_processors, dataset_stats, has_processors
from pirlctl.policies.xvla import LANGUAGE_TOKENS_KEY, tokenize_task


@dataclass
class SFTReport:
    output: str
    steps: int
    final_loss: float
    frames: int
    seconds: float
    reused: bool


def load_frames(dataset_root: str | Path, policy_cfg: Any, fps: int = 10) -> dict[str, torch.Tensor]:
    """Every frame of the dataset as stacked tensors: observations, action chunks [N, T, A], task tokens."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from pirlctl.pipeline.demo_dataset import quiet_video_backend_probe

    quiet_video_backend_probe()
    T = int(policy_cfg.chunk_size)
    ds = LeRobotDataset("pirlctl/demos", root=dataset_root, delta_timestamps={"action": [i / fps for i in range(T)]})
    keys = list(policy_cfg.input_features) + ["action"]
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    for i in range(len(ds)):
        item = ds[i]
        for k in keys:
            cols[k].append(item[k])
    out = {k: torch.stack(v) for k, v in cols.items()}
    out[LANGUAGE_TOKENS_KEY] = tokenize_task(str(ds[0]["task"]), policy_cfg, len(ds))[0]
    return out


def _dataset_task(dataset_root: str | Path) -> str:
    """The dataset's (single) task text, for the preprocessor steps that read it."""
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    return str(LeRobotDatasetMetadata("pirlctl/demos", root=dataset_root).tasks.index[0])


def behaviour_clone(
    policy_cfg: Any,
    dataset_root: str | Path,
    output: str | Path,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    fresh: bool = False,
    log_every: int = 100,
    on_log: Any = None,
    image_shift: int = 0,
) -> SFTReport:
    """Train ``policy_cfg`` from scratch (seeded) on the dataset; save to ``output`` (reused when present).
    ``on_log(step, loss)`` every ``log_every`` steps and at the last; ``on_log(0, nan)`` once the data is loaded.
    ``image_shift`` > 0: each minibatch's camera images are randomly shifted by up to that many pixels after the
    preprocessor (``algorithm.image_shift``; :func:`pirlctl.policies.augment.random_shift`)."""
    out = Path(output)
    if (out / "model.safetensors").is_file() and has_processors(out) and not fresh:
        return SFTReport(str(out), steps, float("nan"), -1, 0.0, reused=True)
    started = time.monotonic()
    processors = build_processors(policy_cfg, dataset_stats(dataset_root, policy_cfg))
    task = _dataset_task(dataset_root)  # the pipeline tokenises it, or reads it (π0.5 writes the state into it)
    data = load_frames(dataset_root, policy_cfg)
    n = data["action"].shape[0]
    torch.manual_seed(seed)
    policy: Any = build_policy(policy_cfg)
    policy.train()
    # π0, π0.5 and SmolVLA read an attention mask (π0.5 also its state as prompt text): the adapter builds the
    # prompt exactly as the actor does; X-VLA reads the tokens alone
    from pirlctl.policies import make_flow_adapter

    prompt = None if policy_cfg.type == "xvla" else getattr(make_flow_adapter(policy), "language", None)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr * 0.05)
    g = torch.Generator().manual_seed(seed)
    cameras = image_keys(policy_cfg)
    loss_val = float("nan")
    if on_log is not None:
        on_log(0, loss_val)
    for step in range(1, steps + 1):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        batch = processors.preprocess({k: v[idx] for k, v in data.items()}, task)
        batch = shift_images(batch, cameras, image_shift, g)  # k = 0: unchanged, nothing drawn from g
        if prompt is not None:
            batch[LANGUAGE_TOKENS_KEY], batch[LANGUAGE_MASK_KEY] = prompt(batch)
        loss, _ = policy.forward(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        loss_val = float(loss.detach())
        if on_log is not None and (step % log_every == 0 or step == steps):
            on_log(step, loss_val)
    policy.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    policy.save_pretrained(tmp)
    processors.save(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return SFTReport(str(out), steps, loss_val, n, time.monotonic() - started, reused=False)
