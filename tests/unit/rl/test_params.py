"""Hyperparameter validation: the API document's examples pass, unknown or out-of-range values fail loudly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ml.rl import AGENTS, create_agent, validate_params
from ml.rl.dqn import DQNAgent, DQNParams
from ml.rl.ppo import PPOParams
from ml.rl.q_learning import QLearningParams

SEED_DOC_COMMON = {"learning_rate": 0.1, "discount_factor": 0.9, "batch_size": 32, "epochs": 100}


def test_registry_names_the_three_types() -> None:
    assert set(AGENTS) == {"q_learning", "dqn", "ppo"}
    assert {cls.model_type for cls in AGENTS.values()} == set(AGENTS)


def test_the_seed_documents_dqn_example_validates() -> None:
    params = validate_params("dqn", {"learning_rate": 0.001, "discount_factor": 0.99})
    assert isinstance(params, DQNParams)
    assert (params.learning_rate, params.discount_factor) == (0.001, 0.99)


@pytest.mark.parametrize("model_type", ["q_learning", "dqn", "ppo"])
def test_the_seed_documents_common_example_validates_for_every_type(model_type: str) -> None:
    params = validate_params(model_type, SEED_DOC_COMMON)
    for key, value in SEED_DOC_COMMON.items():
        assert getattr(params, key) == value  # nothing clamped or rewritten
    assert type(params) is {"q_learning": QLearningParams, "dqn": DQNParams, "ppo": PPOParams}[model_type]


@pytest.mark.parametrize("model_type", ["q_learning", "dqn", "ppo"])
def test_unknown_field_is_named(model_type: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_params(model_type, {"learning_rat": 0.1})
    errors = err.value.errors()
    assert [(e["loc"], e["type"]) for e in errors] == [(("learning_rat",), "extra_forbidden")]


@pytest.mark.parametrize(
    ("model_type", "field", "value"),
    [
        ("dqn", "learning_rate", 0.0),
        ("dqn", "learning_rate", 1.5),
        ("ppo", "discount_factor", 1.01),
        ("q_learning", "discount_factor", -0.1),
        ("ppo", "batch_size", 0),
        ("dqn", "epochs", 0),
        ("ppo", "clip_coef", 0.0),
        ("ppo", "gae_lambda", 1.5),
        ("dqn", "epsilon_end", 2.0),
        ("q_learning", "time_bins", 0),
        ("dqn", "hidden_size", 100_000),
    ],
)
def test_out_of_range_value_is_named(model_type: str, field: str, value: float) -> None:
    with pytest.raises(ValidationError) as err:
        validate_params(model_type, {field: value})
    assert [e["loc"] for e in err.value.errors()] == [(field,)]


def test_unknown_model_type_is_a_validation_error_on_model_type() -> None:
    with pytest.raises(ValidationError) as err:
        validate_params("td3", {})
    assert err.value.errors()[0]["loc"] == ("model_type",)


def test_cross_field_rule_and_wrong_types() -> None:
    with pytest.raises(ValidationError, match="buffer_size"):
        validate_params("dqn", {"buffer_size": 16, "batch_size": 64})
    with pytest.raises(ValidationError):
        validate_params("dqn", {"batch_size": "many"})


def test_agents_validate_in_init_and_params_are_frozen() -> None:
    with pytest.raises(ValidationError):
        DQNAgent({"learning_rate": -1})
    agent = create_agent("ppo", {"epochs": 3})
    assert agent.params.epochs == 3
    with pytest.raises(ValidationError):
        agent.params.epochs = 5  # type: ignore[misc]
