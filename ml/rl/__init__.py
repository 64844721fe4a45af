"""Reinforcement learning for edge placement: the environment, baselines and three agents.

Importing ``ml.rl`` registers the Gymnasium id ``modelbus/EdgePlacement-v0`` (once, however often it is imported),
so ``gymnasium.make("modelbus/EdgePlacement-v0", scenario=...)`` works. The agents (which import torch) load
lazily on first access to ``ml.rl.AGENTS``, ``ml.rl.validate_params`` and the other registry names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym

from ml.rl.env import ENV_ID, EdgePlacementEnv, Scenario, default_scenario, make_env

if TYPE_CHECKING:
    from ml.rl.agent import Agent, EpisodeStats
    from ml.rl.registry import AGENTS, agent_class, create_agent, load_agent, validate_params


def register_env() -> None:
    """Register ``modelbus/EdgePlacement-v0`` with Gymnasium unless it is already registered."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="ml.rl.env:EdgePlacementEnv")


register_env()

_LAZY = {
    "AGENTS": "ml.rl.registry",
    "agent_class": "ml.rl.registry",
    "create_agent": "ml.rl.registry",
    "load_agent": "ml.rl.registry",
    "validate_params": "ml.rl.registry",
    "Agent": "ml.rl.agent",
    "EpisodeStats": "ml.rl.agent",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ml.rl' has no attribute {name!r}")


__all__ = [
    "AGENTS",
    "ENV_ID",
    "Agent",
    "EdgePlacementEnv",
    "EpisodeStats",
    "Scenario",
    "agent_class",
    "create_agent",
    "default_scenario",
    "load_agent",
    "make_env",
    "register_env",
    "validate_params",
]
