"""The policy's LeRobot processors: dataset statistics, pirlctl's SFT folder as a complete LeRobot policy folder
(loaded by LeRobot alone, same action as pirlctl's ODE path), refusals of missing or mismatched statistics."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from lerobot.configs.types import NormalizationMode
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from safetensors.torch import save_file

from pirlctl.algorithms.pi_rl.configuration_pi_rl import PiRLConfig
from pirlctl.algorithms.pi_rl.pi_rl_algorithm import PiRLAlgorithm
from pirlctl.config.run_config import load_run_config, policy_state_dim
from pirlctl.errors import one_line
from pirlctl.pipeline.demos import dataset_features
from pirlctl.pipeline.sft import behaviour_clone
from pirlctl.policies.loading import DEFAULT_RUN_CONFIG, build_policy
from pirlctl.policies.processors import (
    DATASET_STATS_FILE,
    POSTPROCESSOR_FILE,
    PREPROCESSOR_FILE,
    ProcessorError,
    build_processors,
    dataset_stats,
    load_processors,
)
from pirlctl.policies.xvla import LANGUAGE_TOKENS_KEY, tokenize_task

TASK = "pick up the cube"


def _run_config():
    return load_run_config(DEFAULT_RUN_CONFIG)


def _mean_std(policy_cfg):
    cfg = copy.deepcopy(policy_cfg)
    cfg.normalization_mapping = {
        "VISUAL": NormalizationMode.IDENTITY,
        "STATE": NormalizationMode.MEAN_STD,
        "ACTION": NormalizationMode.MEAN_STD,
    }
    return cfg


def _fake_demos(root, settings, lengths=(4, 5)):
    """A demos dataset in the job's format (as `record_demos` writes it), random frames and actions."""
    ds = LeRobotDataset.create(
        "pirlctl/demos", fps=10, features=dataset_features(settings), root=root, use_videos=False
    )
    rng = np.random.default_rng(0)
    s = settings.image_size
    for n in lengths:
        for _ in range(n):
            frame = {f"observation.images.{cam}": rng.random((s, s, 3), dtype=np.float32) for cam in settings.cameras}
            frame["observation.state"] = rng.normal(3.0, 2.0, policy_state_dim(settings)).astype(np.float32)
            frame["action"] = rng.normal([0.1, -0.2, 0.3, 1.0], [0.5, 0.2, 0.1, 0.8]).astype(np.float32)
            frame["task"] = TASK
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return root


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return _fake_demos(tmp_path_factory.mktemp("demos") / "demos", _run_config().env)


@pytest.fixture(scope="module")
def sft_folder(demos, tmp_path_factory):
    """pirlctl's SFT (a few steps) of the tiny X-VLA with MEAN_STD state and action normalisation."""
    cfg = _mean_std(_run_config().policy)
    out = tmp_path_factory.mktemp("sft") / "sft"
    behaviour_clone(cfg, demos, out, steps=2, batch_size=4, lr=1e-3, seed=0)
    return cfg, out


def _frames(demos):
    ds = LeRobotDataset("pirlctl/demos", root=demos)
    return {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ("observation.state", "action")}


def test_dataset_stats_are_lerobots_statistics_of_the_frames(demos):
    cfg = _run_config().policy
    stats = dataset_stats(demos, cfg)
    assert set(stats) == set(cfg.input_features) | set(cfg.output_features)
    frames = _frames(demos)
    for key, x in frames.items():
        torch.testing.assert_close(stats[key]["mean"], x.mean(0), atol=1e-5, rtol=0)
        torch.testing.assert_close(stats[key]["std"], x.std(0, unbiased=False), atol=1e-5, rtol=0)
        torch.testing.assert_close(stats[key]["min"], x.min(0).values)
    assert stats["observation.images.front"]["mean"].shape == (3, 1, 1)


def test_mean_std_processors_normalise_and_unnormalise_actions_exactly(demos):
    cfg = _mean_std(_run_config().policy)
    procs = build_processors(cfg, dataset_stats(demos, cfg))
    action = _frames(demos)["action"][:6].unsqueeze(1).repeat(1, cfg.chunk_size, 1)  # [B, T, A]
    obs = {k: torch.rand(6, *f.shape) for k, f in cfg.input_features.items()}
    batch = procs.preprocess({**obs, "action": action}, TASK)
    assert not torch.allclose(batch["action"], action)  # really normalised
    assert batch["action"].abs().mean() < 2.0
    assert torch.equal(batch[LANGUAGE_TOKENS_KEY], tokenize_task(TASK, cfg, 6)[0])  # offline: pirlctl's tokens
    torch.testing.assert_close(procs.postprocess(batch["action"]), action, atol=1e-5, rtol=0)


def test_sft_folder_is_a_complete_lerobot_policy_folder(sft_folder):
    _, out = sft_folder
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", PREPROCESSOR_FILE, POSTPROCESSOR_FILE} <= names
    steps = [s["registry_name"] for s in json.loads((out / PREPROCESSOR_FILE).read_text())["steps"]]
    assert "normalizer_processor" in steps
    assert "tokenizer_processor" not in steps  # the tiny vocabulary: pirlctl supplies the tokens (docstring)


_LEROBOT_ALONE = r"""
import json, sys
import torch
from safetensors.torch import load_file
from lerobot.policies.factory import make_pre_post_processors
from lerobot.policies.xvla.modeling_xvla import XVLAPolicy

folder, obs_file, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
policy = XVLAPolicy.from_pretrained(folder, local_files_only=True)
pre, post = make_pre_post_processors(policy.config, pretrained_path=folder)
batch = pre(load_file(obs_file))
torch.manual_seed(seed)  # the sampler's first draw is its initial noise x1 [B, T, D]
chunk = post(policy.predict_action_chunk(batch))
assert not any(m == "pirlctl" or m.startswith("pirlctl.") for m in sys.modules), "pirlctl was imported"
print(json.dumps(chunk.tolist()))
"""


def test_lerobot_alone_loads_the_sft_folder_and_returns_pirls_ode_action(sft_folder, tmp_path, child_json):
    cfg, out = sft_folder
    B, seed = 3, 7
    g = torch.Generator().manual_seed(1)
    obs = {k: torch.rand(B, *f.shape, generator=g) for k, f in cfg.input_features.items()}
    obs["observation.state"] = 3.0 + 2.0 * torch.randn(B, *cfg.input_features["observation.state"].shape, generator=g)
    obs[LANGUAGE_TOKENS_KEY] = tokenize_task(TASK, cfg, B)[0]
    save_file(obs, str(tmp_path / "obs.safetensors"))
    theirs = torch.tensor(child_json(_LEROBOT_ALONE, str(out), str(tmp_path / "obs.safetensors"), str(seed)))

    policy = build_policy(cfg, out)
    procs = load_processors(out, cfg)
    algo = PiRLAlgorithm(policy, PiRLConfig(num_denoise_steps=int(cfg.num_denoising_steps)))
    x_init = torch.randn(
        B, algo.adapter.chunk_size, algo.adapter.action_dim, generator=torch.Generator().manual_seed(seed)
    )
    step = algo.act(procs.preprocess(obs), deterministic=True, x_init=x_init)
    ours = procs.postprocess(algo.adapter.postprocess(step.chain[:, -1]))
    assert theirs.shape == ours.shape == (B, cfg.chunk_size, 4)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    # and the normalisation is not a no-op here: the raw model output differs from the env action
    assert not torch.allclose(algo.adapter.postprocess(step.chain[:, -1]), ours, atol=1e-3)


def test_planted_missing_dataset_stats_file_is_refused_in_one_line(demos, tmp_path):
    import shutil

    copy_root = tmp_path / "demos"
    shutil.copytree(demos, copy_root)
    (copy_root / DATASET_STATS_FILE).unlink()
    with pytest.raises(ProcessorError) as err:
        dataset_stats(copy_root, _run_config().policy)
    msg = one_line(err.value)
    assert msg == str(err.value) and str(copy_root / DATASET_STATS_FILE) in msg and "--fresh" in msg


def test_dataset_stats_that_do_not_fit_the_policy_are_refused(demos):
    cfg = _mean_std(_run_config().policy)
    cfg.input_features["observation.state"] = type(cfg.input_features["observation.state"])(
        type=cfg.input_features["observation.state"].type, shape=(18,)
    )
    with pytest.raises(
        ProcessorError, match=r"'observation.state' mean has shape \[21\] but the policy's feature is \[18\]"
    ):
        dataset_stats(demos, cfg)
    good = _mean_std(_run_config().policy)
    without_action = {k: v for k, v in dataset_stats(demos, good).items() if k != "action"}
    with pytest.raises(ProcessorError, match="no statistics for 'action', which the policy normalises with MEAN_STD"):
        build_processors(good, without_action)


def test_planted_missing_or_mismatched_stats_in_a_policy_folder_are_refused(sft_folder, tmp_path):
    import shutil

    cfg, out = sft_folder
    state_files = sorted(p.name for p in out.glob("policy_preprocessor_step_*_normalizer_processor.safetensors"))
    assert len(state_files) == 1

    missing = tmp_path / "missing"
    shutil.copytree(out, missing)
    (missing / state_files[0]).unlink()
    with pytest.raises(ProcessorError) as err:
        load_processors(missing, cfg)
    assert str(missing / state_files[0]) in str(err.value) and "\n" not in str(err.value)

    wrong = tmp_path / "wrong"
    shutil.copytree(out, wrong)
    from safetensors.torch import load_file

    state = load_file(str(wrong / state_files[0]))
    state["observation.state.mean"] = torch.zeros(5)
    save_file(state, str(wrong / state_files[0]))
    with pytest.raises(ProcessorError, match=r"'observation.state' mean has shape \[5\]") as err:
        load_processors(wrong, cfg)
    assert str(wrong / PREPROCESSOR_FILE) in str(err.value)


def test_a_folder_without_processors_is_refused_when_its_policy_normalises(sft_folder, tmp_path):
    import shutil

    cfg, out = sft_folder
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(out / name, bare / name)
    with pytest.raises(ProcessorError, match="has no policy_preprocessor.json/policy_postprocessor.json"):
        load_processors(bare, cfg)
    identity = load_processors(bare, _run_config().policy)  # an old pirlctl folder: nothing to normalise
    x = torch.randn(2, 8, 4)
    assert torch.equal(identity.postprocess(x), x)


def test_a_checkpoint_naming_an_uncached_tokenizer_says_what_to_download(sft_folder, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg, out = sft_folder
    tok = tmp_path / "tok"
    shutil.copytree(out, tok)
    pre = json.loads((tok / PREPROCESSOR_FILE).read_text())
    pre["steps"].insert(
        2, {"registry_name": "tokenizer_processor", "config": {"tokenizer_name": "pirl-test/no-such-tok"}}
    )
    (tok / PREPROCESSOR_FILE).write_text(json.dumps(pre))
    with pytest.raises(ProcessorError, match=r"'pirl-test/no-such-tok' .* not in the local Hugging Face cache") as err:
        load_processors(tok, cfg)
    assert "hf download pirl-test/no-such-tok" in str(err.value)


def test_sft_trains_in_the_normalised_space(demos, tmp_path):
    """Same seed, weights and frames: only the normalisation differs, so the first loss differs only if the
    preprocessor's normalisation reaches the training batch."""
    losses = {}
    for name, cfg in (("identity", _run_config().policy), ("mean_std", _mean_std(_run_config().policy))):
        report = behaviour_clone(cfg, demos, tmp_path / name, steps=1, batch_size=4, seed=0)
        losses[name] = report.final_loss
    assert losses["identity"] != losses["mean_std"]


def test_own_pipeline_is_lerobots_xvla_pipeline_minus_the_documented_steps():
    """Fails loudly when LeRobot's X-VLA factory changes the steps pirlctl relies on (LeRobot 0.6.1)."""
    from lerobot.policies.xvla.processor_xvla import make_xvla_pre_post_processors
    from lerobot.processor import TokenizerProcessorStep

    from pirlctl.policies.processors import (
        OWN_SFT_OMITTED_STEPS,
        TOKENIZER_STEP,
        _registry_name,
        _tokenizer_step_unloaded,
    )

    cfg = _run_config().policy
    original = TokenizerProcessorStep.__post_init__
    with _tokenizer_step_unloaded():
        pre, post = make_xvla_pre_post_processors(cfg, dataset_stats=None)
    assert TokenizerProcessorStep.__post_init__ is original  # the patch does not outlive the build
    theirs = [_registry_name(s) for s in pre.steps]
    assert TOKENIZER_STEP in theirs and all(n in theirs for n in OWN_SFT_OMITTED_STEPS)
    ours = build_processors(cfg, None)
    assert [_registry_name(s) for s in ours.preprocessor.steps] == [
        n for n in theirs if n not in (*OWN_SFT_OMITTED_STEPS, TOKENIZER_STEP)
    ]
    assert [_registry_name(s) for s in ours.postprocessor.steps] == [_registry_name(s) for s in post.steps]
    assert not ours.tokenizes


def test_a_lerobot_factory_pipeline_with_a_local_tokenizer_loads_and_tokenises_itself(tmp_path):
    """A folder as ``lerobot-train`` writes it (LeRobot's X-VLA factory, every step kept): the tokenizer step comes
    from the folder (here a local tokenizer directory), the images get LeRobot's ImageNet normalisation."""
    from lerobot.policies.factory import make_pre_post_processors
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "pick": 4, "up": 5, "the": 6, "cube": 7}
    tk = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>").save_pretrained(tmp_path / "tok")
    cfg = _run_config().policy
    cfg.tokenizer_name = str(tmp_path / "tok")
    pre, post = make_pre_post_processors(cfg, dataset_stats=None)
    pre.save_pretrained(tmp_path / "ckpt")
    post.save_pretrained(tmp_path / "ckpt")

    procs = load_processors(tmp_path / "ckpt", cfg)
    assert procs.tokenizes
    obs = {k: torch.rand(2, *f.shape) for k, f in cfg.input_features.items()}
    out = procs.preprocess(obs, TASK)
    assert out[LANGUAGE_TOKENS_KEY].tolist() == [[4, 5, 6, 7, 1, 1, 1, 1]] * 2
    assert out["observation.images.front"].min() < 0  # ImageNet-normalised, as the checkpoint was trained


# -- the runtime: checkpoints, the default job ---------------------------------------------------------------


def _run_from(policy_cfg, policy_path, out):
    run = _run_config()
    run.policy, run.policy_path, run.output_dir = policy_cfg, str(policy_path), str(out)
    return run


def test_lerobot_alone_loads_a_pirlctl_checkpoint_and_returns_pirls_ode_action(sft_folder, tmp_path, child_json):
    """A checkpoint's pretrained_model/ is a complete LeRobot policy folder: the processors are saved there (and in
    the manifest), restored with the checkpoint, and LeRobot's own code gives pirlctl's ODE action (atol 1e-5)."""
    from pirlctl.config.run_config import config_hash, encode_run_config
    from pirlctl.diagnostics.sync_checks import perturb_one_parameter
    from pirlctl.runtime.build import build_algorithm, run_processors
    from pirlctl.runtime.checkpoint import restore_checkpoint, save_checkpoint, verify_checkpoint

    cfg, sft = sft_folder
    run = _run_from(cfg, sft, tmp_path / "run")
    trained = build_algorithm(run, "cpu")
    perturb_one_parameter(trained, 0.05)  # the checkpoint's weights are not the SFT folder's
    path = save_checkpoint(
        tmp_path / "run",
        1,
        policy=trained.policy,
        algorithm=trained,
        processors=trained.processors,
        run_config_json=encode_run_config(run),
        config_hash=config_hash(run),
        counters={"env_steps": 0},
    )
    folder = path / "pretrained_model"
    manifest = json.loads((path / "manifest.json").read_text())["files"]
    state_files = sorted(p.name for p in folder.glob("policy_*processor*.safetensors"))
    assert len(state_files) == 2
    for name in (PREPROCESSOR_FILE, POSTPROCESSOR_FILE, *state_files):
        assert f"pretrained_model/{name}" in manifest
    info = verify_checkpoint(tmp_path / "run", expected_config_hash=config_hash(run))

    restored = build_algorithm(run, "cpu")
    restored.processors = None
    restore_checkpoint(info, policy=restored.policy, algorithm=restored, restore_rng=False)
    procs = restored.processors
    assert procs is not None  # restore loads the checkpoint's processors

    B, seed = 3, 11
    g = torch.Generator().manual_seed(2)
    obs = {k: torch.rand(B, *f.shape, generator=g) for k, f in cfg.input_features.items()}
    obs["observation.state"] = 3.0 + 2.0 * torch.randn(B, *cfg.input_features["observation.state"].shape, generator=g)
    obs[LANGUAGE_TOKENS_KEY] = tokenize_task(TASK, cfg, B)[0]
    save_file(obs, str(tmp_path / "obs.safetensors"))
    theirs = torch.tensor(child_json(_LEROBOT_ALONE, str(folder), str(tmp_path / "obs.safetensors"), str(seed)))
    x_init = torch.randn(
        B, restored.adapter.chunk_size, restored.adapter.action_dim, generator=torch.Generator().manual_seed(seed)
    )
    step = restored.act(procs.preprocess(obs), deterministic=True, x_init=x_init)
    ours = procs.postprocess(restored.adapter.postprocess(step.chain[:, -1]))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    # the checkpoint's weights, not the SFT folder's, produced it
    sft_step = build_algorithm(run, "cpu").act(procs.preprocess(obs), deterministic=True, x_init=x_init)
    assert not torch.allclose(sft_step.chain[:, -1], step.chain[:, -1], atol=1e-4)
    # `pirlctl eval <checkpoint>` builds from pretrained_model/: the same statistics
    x = torch.randn(2, cfg.chunk_size, 4)
    evaluated = run_processors(_run_from(cfg, folder, tmp_path / "eval"))
    torch.testing.assert_close(evaluated.postprocess(x), procs.postprocess(x), atol=0, rtol=0)


def test_the_default_jobs_identity_processors_leave_observations_actions_and_log_probs_unchanged():
    """The default job (IDENTITY normalisation): the actor's preprocess -> act -> postprocess gives, for the same
    seed, bit-identical actions, chain and log-prob to feeding the raw observation (the path before processors)."""
    from pirlctl.diagnostics.sync_checks import synthetic_observations
    from pirlctl.runtime.build import build_algorithm

    cfg = _run_config()
    algo = build_algorithm(cfg, "cpu")
    procs = algo.processors
    raw = {k: v[0] for k, v in synthetic_observations(cfg, 1, seed=5).items()}
    before = algo.act({k: v.unsqueeze(0) for k, v in raw.items()}, generator=torch.Generator().manual_seed(9))
    seen = procs.preprocess_one(raw, cfg.env.instruction)
    assert set(seen) == set(raw) | {"domain_id"} and int(seen["domain_id"]) == 0
    for key, value in raw.items():
        assert torch.equal(seen[key], value), key
    after = algo.act({k: v.unsqueeze(0) for k, v in seen.items()}, generator=torch.Generator().manual_seed(9))
    assert torch.equal(before.chain, after.chain) and torch.equal(before.log_prob, after.log_prob)
    assert np.array_equal(procs.env_action(after.actions), before.actions[0].numpy())
    # building the processors draws no random numbers: the seeded weights are those of the build before them
    from lerobot.rl.algorithms.factory import make_algorithm

    torch.manual_seed(cfg.seed)
    old = make_algorithm(cfg.pirl, build_policy(cfg.policy, cfg.policy_path))
    for key, value in old.state_dict().items():
        assert torch.equal(value, algo.state_dict()[key]), key
