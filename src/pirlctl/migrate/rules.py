"""The rule data of the SAC -> PI-RL migration: names, gym_hil facts, and the tables of SAC fields with their prose.

Plain data only (no imports): the walk (:mod:`pirlctl.migrate.walk`) applies these rules; each table says how its
entries are reported. Fields the walk handles one by one (features, runtime, env) are written there, next to the
logic that needs them.
"""

SUPPORTED_POLICIES = ("xvla", "pi0", "pi05", "smolvla")  # the flow policies pirlctl adapts
SAC_POLICY_TYPES = ("gaussian_actor", "sac")  # "sac" is the pre-0.6 name of the Gaussian actor policy
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
LOOPBACK = ("127.0.0.1", "localhost", "::1")

# gym_hil as pirlctl's actor runs it (shared/reference/lerobot-runtime.md).
GYM_HIL_CAMERAS = ("front", "wrist")
GYM_HIL_FPS = 10
GYM_HIL_TIME_LIMIT = 100  # gym_hil registers its tasks with max_episode_steps=100
GYM_HIL_ACTION_DIM = 4  # dx, dy, dz, gripper
GYM_HIL_VARIANTS = ("Keyboard", "Gamepad", "Viewer", "Base")  # teleop/display wrappers of one task
PICK_CUBE_TASK = "PandaPickCube-v0"

# SAC hyperparameters with no PI-RL field of the same meaning. Each group is a "you must decide" item naming the
# PI-RL fields that take its role (written at their defaults). {n_exec}, {discount}, {per_chunk} are filled in.
SAC_DECISIONS: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (
        ("actor_lr",),
        ("algorithm.actor_lr",),
        "SAC's rate suits a small MLP actor trained from scratch; PI-RL's default suits a pretrained VLA (RLinf: "
        "5e-6). A freshly behaviour-cloned tiny X-VLA takes ~3e-4 (configs/pick_cube_tiny.json)",
    ),
    (
        ("critic_lr",),
        ("algorithm.value_lr",),
        "SAC's twin-Q critics become one PPO value head (RLinf: 1e-4; the tiny configs use 1e-3)",
    ),
    (
        ("temperature_lr", "temperature_init", "target_entropy", "use_backup_entropy"),
        ("algorithm.noise_method", "algorithm.noise_level", "algorithm.entropy_coef"),
        "no entropy temperature in PI-RL: exploration is the denoising chain's noise (flow_sde's noise_level, or a "
        "learned σ with flow_noise plus an entropy bonus)",
    ),
    (
        ("discount",),
        ("algorithm.gamma",),
        "SAC discounts per env step, PI-RL per chunk of n_exec={n_exec} steps: the same horizon is "
        "{discount}^{n_exec} = {per_chunk}; the default per chunk looks further ahead",
    ),
    (
        ("utd_ratio", "policy_update_freq", "batch_size"),
        ("algorithm.ppo_epochs", "algorithm.minibatch_size", "runtime.rollout_chunks", "runtime.num_actors"),
        "SAC samples replay batches (utd_ratio updates per env step); PPO makes ppo_epochs passes over num_actors × "
        "rollout_chunks fresh chunks, in minibatches of minibatch_size chunks",
    ),
    (
        ("num_critics", "num_subsample_critics", "critic_network_kwargs", "critic_target_update_weight"),
        ("algorithm.value_head", "algorithm.value_hidden_dim"),
        "PPO has one value head on the policy's features and no target network; choose where it reads "
        "(vlm_prefix or action_expert) and its width",
    ),
    (
        ("grad_clip_norm",),
        ("algorithm.grad_clip_norm",),
        "SAC's clip (LeRobot default 40) was for MLPs; PPO on a VLA clips actor and critic separately (RLinf: 1.0)",
    ),
)

# Fields dropped for one reason each (reported as one "changes" item per reason, listing the fields present).
DROPPED_POLICY = {
    "the Gaussian actor's architecture is replaced by the flow policy's config; which X-VLA parts train is "
    "algorithm.trainable (default: the action expert, VLM frozen)": [
        "vision_encoder_name",
        "freeze_vision_encoder",
        "image_encoder_hidden_dim",
        "shared_encoder",
        "image_embedding_pooling_dim",
        "state_encoder_hidden_dim",
        "latent_dim",
        "actor_network_kwargs",
        "policy_kwargs",
        "n_obs_steps",
        "use_amp",
        "use_peft",
    ],
    "PI-RL is on-policy: no replay buffer; each PPO batch is runtime.num_actors × runtime.rollout_chunks fresh "
    "chunks": [
        "online_buffer_capacity",
        "offline_buffer_capacity",
        "async_prefetch",
        "online_step_before_learning",
        "storage_device",
    ],
    "pirlctl runs the learner and each actor as separate processes (`pirlctl learner`, `pirlctl actor`)": [
        "concurrency"
    ],
    "filled in by LeRobot at run time; pirlctl links algorithm and policy itself": ["policy_config"],
}
DROPPED_TOP = {
    "offline-trainer, DataLoader and eval settings: pirlctl's learner trains on rollouts, logs every PPO iteration "
    "and checkpoints by runtime.checkpoint_every (LeRobot's SAC learner ignored most of these too)": [
        "cudnn_deterministic",
        "num_workers",
        "prefetch_factor",
        "persistent_workers",
        "dataloader_multiprocessing_context",
        "steps",
        "env_eval_freq",
        "log_freq",
        "eval_steps",
        "max_eval_samples",
        "tolerance_s",
        "save_checkpoint",
        "use_policy_training_preset",
        "optimizer",
        "scheduler",
        "eval",
        "checkpoint_path",
    ],
}
# Optional LeRobot features: dropped when off or empty, otherwise the user decides (no pirlctl equivalent).
OPTIONAL_FEATURES = {
    "wandb": "pirlctl logs metrics to output_dir/metrics.jsonl, not W&B; forward them yourself if needed",
    "peft": "PI-RL trains the parts chosen by algorithm.trainable; LoRA/PEFT is not wired",
    "reward_model": "PI-RL's reward is the env's (gym_hil: success when the cube is lifted); a learned reward "
    "classifier is not wired",
    "sample_weighting": "it weights offline samples; PI-RL has none",
    "rename_map": "rename the policy's features instead; pirlctl's actor feeds observation.images.<camera>",
    "job": "HF Jobs dispatch belongs to lerobot-train; run pirlctl learner/actor where they should run",
    "save_checkpoint_to_hub": "pirlctl never pushes checkpoints; upload output_dir/checkpoints yourself",
}
