"""The RL read models: episodes, deployments of agents, served actions."""

from __future__ import annotations

from infra import mongo
from infra.projections import Doc, Projection
from schemas import rl
from schemas.envelope import Envelope


def rl_episode_id(env: Envelope) -> str:
    """One document per (job, attempt, episode) in ``rl_episodes``."""
    return f"{env.subject}:{env.data.get('attempt')}:{env.data.get('episode')}"


def reduce_rl_episode(doc: Doc | None, env: Envelope) -> Doc | None:
    if env.type != rl.EPISODE_RECORDED or doc is not None:
        return None
    episode = rl.EpisodeRecorded.model_validate(env.data)
    return {"_id": rl_episode_id(env), **episode.model_dump(), "time": env.time}


def reduce_rl_deployment(doc: Doc | None, env: Envelope) -> Doc | None:
    """The current deployment of an RL agent (one document per model); ``generation`` is the model
    ``status_version`` the deploy moved it to, so outcomes of an older request are ignored."""
    data = env.data
    history = (doc or {}).get("history", [])[-19:]
    if env.type == rl.DEPLOY_REQUESTED:
        cmd = rl.DeployRequested.model_validate(data)
        if doc is not None and doc["generation"] >= cmd.generation:
            return None
        return {
            "_id": cmd.model_id,
            "model_id": cmd.model_id,
            "generation": cmd.generation,
            "status": "deploying",
            **cmd.deployment.model_dump(mode="json"),
            "requested_at": cmd.requested_at,
            "requested_by": cmd.requested_by,
            "deployed_at": None,
            "error": None,
            "detail": {},
            "history": [*history, {"status": "deploying", "generation": cmd.generation, "at": env.time}],
        }
    if doc is None:
        return None
    if env.type == rl.UNDEPLOY_REQUESTED:
        undeploy = rl.UndeployRequested.model_validate(data)
        if undeploy.generation <= doc["generation"]:
            return None
        entry = {"status": "undeploying", "generation": undeploy.generation, "at": env.time}
        return doc | {"generation": undeploy.generation, "status": "undeploying", "history": [*history, entry]}
    if env.type in (rl.DEPLOYED, rl.DEPLOY_FAILED, rl.UNDEPLOYED):
        change = rl.DeploymentChanged.model_validate(data)
        newer = change.generation > doc["generation"]  # only an undeploy (replaced by a newer model) skips ahead
        if change.generation < doc["generation"] or (newer and change.status != "undeployed"):
            return None
        entry = {"status": change.status, "generation": change.generation, "at": env.time, "error": change.error}
        return doc | {
            "generation": change.generation,
            "status": change.status,
            "detail": change.detail,
            "error": change.error,
            "worker_id": change.worker_id,
            "deployed_at": env.time if change.status == "deployed" else doc.get("deployed_at"),
            "history": [*history, entry],
        }
    return None


def reduce_rl_served(doc: Doc | None, env: Envelope) -> Doc | None:
    if env.type != rl.ACT_SERVED or doc is not None:
        return None
    served = rl.ActServed.model_validate(env.data)
    return {"_id": env.subject, **served.model_dump(), "time": env.time}


PROJECTIONS = (
    Projection(mongo.RL_EPISODES, reduce_rl_episode, (rl.EPISODE_RECORDED,), rl_episode_id),
    Projection(
        mongo.RL_DEPLOYMENTS,
        reduce_rl_deployment,
        (rl.DEPLOY_REQUESTED, rl.UNDEPLOY_REQUESTED, rl.DEPLOYED, rl.DEPLOY_FAILED, rl.UNDEPLOYED),
    ),
    Projection(mongo.RL_SERVED, reduce_rl_served, (rl.ACT_SERVED,)),
)
