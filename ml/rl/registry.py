"""Agent registry: ``model_type`` name -> class, parameter validation, construction and artifact loading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ml.rl.agent import Agent, AgentParams, artifact_model_type
from ml.rl.dqn import DQNAgent
from ml.rl.ppo import PPOAgent
from ml.rl.q_learning import QLearningAgent

ModelType = Literal["q_learning", "dqn", "ppo"]

AGENTS: dict[str, type[Agent]] = {
    "q_learning": QLearningAgent,
    "dqn": DQNAgent,
    "ppo": PPOAgent,
}


class _ModelTypeChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_type: ModelType


def agent_class(model_type: str) -> type[Agent]:
    """The class registered as ``model_type``; a pydantic ValidationError on field ``model_type`` otherwise."""
    _ModelTypeChoice(model_type=model_type)  # type: ignore[arg-type]  # raises ValidationError naming the field
    return AGENTS[model_type]


def validate_params(model_type: str, params: Mapping[str, Any] | None = None) -> AgentParams:
    """Validate ``params`` for ``model_type`` (defaults filled in).

    Raises pydantic ``ValidationError``: an unknown ``model_type`` names the field ``model_type``; an unknown
    parameter is an ``extra_forbidden`` error at its name; an out-of-range value names the field and the bound.
    Nothing is clamped.
    """
    return agent_class(model_type).params_model.model_validate(dict(params or {}))


def create_agent(model_type: str, params: Mapping[str, Any] | None = None) -> Agent:
    """A fresh, unfitted agent of ``model_type`` with validated ``params``."""
    cls = agent_class(model_type)
    return cls(validate_params(model_type, params))


def load_agent(data: bytes, model_type: str | None = None) -> Agent:
    """Rebuild an agent from ``Agent.to_bytes()``; ``model_type`` is read from the artifact when not given."""
    stored = artifact_model_type(data)
    if model_type is not None and model_type != stored:
        raise ValueError(f"artifact holds a {stored!r} agent, not {model_type!r}")
    return agent_class(stored).from_bytes(data)
