"""Reinforcement-learning agents for edge placement (``/api/v1``): Q-learning, DQN, PPO."""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

from api.rl import console
from api.rl.routes import RLController
from bootstrap.domain import Domain
from consumers.hooks import EpisodeStream, TrainingHook, WorkerHook
from consumers.rl import projections, service
from infra import mongo
from schemas import rl
from schemas.topics import TopicSpec

DOMAIN = Domain(
    name="rl",
    routes=[RLController],
    console=console.HANDLERS,
    console_nav=[("rl", "RL", "/ui/rl")],
    workers=[WorkerHook("serving", service.register)],
    training=TrainingHook(
        service.train_agent,
        service.rl_model_name,
        warm_up=service.warm_up,
        episodes=EpisodeStream("rl.episodes", rl.EPISODE_RECORDED, rl.EpisodeRecorded),
    ),
    projections=projections.PROJECTIONS,
    topics=[
        TopicSpec(
            "rl.episodes",
            "Per-episode RL training metrics: reward, steps, latency, cost, overload, loss.",
            "job_id",
            {rl.EPISODE_RECORDED: rl.EpisodeRecorded},
            one_partition=True,
        ),
    ],
    payloads={
        "deploy.commands": {rl.DEPLOY_REQUESTED: rl.DeployRequested, rl.UNDEPLOY_REQUESTED: rl.UndeployRequested},
        "deploy.events": {
            rl.DEPLOYED: rl.DeploymentChanged,
            rl.DEPLOY_FAILED: rl.DeploymentChanged,
            rl.UNDEPLOYED: rl.DeploymentChanged,
        },
        "predict.served": {rl.ACT_SERVED: rl.ActServed},
    },
    indexes={
        mongo.RL_EPISODES: [IndexModel([("job_id", ASCENDING), ("attempt", ASCENDING), ("episode", ASCENDING)])],
        mongo.RL_SERVED: [IndexModel([("model_id", ASCENDING), ("time", ASCENDING)])],
    },
)
