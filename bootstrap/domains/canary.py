"""Deployments of the tabular family (``/v1/ml/deploy``, ``/v1/ml/predict``, ``/v1/ml/feedback``): staging,
shadow, canary with its anytime-valid analysis, production, rollback."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from api.canary import console, console_deployments
from api.canary.deploy import DeployController, PredictController
from bootstrap.domain import Domain
from consumers.canary import analyser, projections
from consumers.hooks import WorkerHook
from infra import mongo
from schemas import deploy
from schemas.topics import TopicSpec

DOMAIN = Domain(
    name="canary",
    routes=[DeployController, PredictController],
    console=[*console.HANDLERS, *console_deployments.HANDLERS],
    console_nav=[("deployments", "Deployments", "/ui/deployments")],
    workers=[WorkerHook("analyser", analyser.register)],
    projections=projections.PROJECTIONS,
    topics=[
        TopicSpec(
            "predict.feedback",
            "Ground truth labels arriving after the prediction.",
            "prediction_id",
            {deploy.PREDICTION_FEEDBACK: deploy.PredictionFeedback},
        ),
        TopicSpec(
            "canary.metrics",
            "Canary and shadow evidence per arm after each analysis window, with the anytime-valid intervals.",
            "canary_id",
            {deploy.CANARY_METRICS: deploy.CanaryMetrics, deploy.SHADOW_METRICS: deploy.CanaryMetrics},
            one_partition=True,
        ),
        TopicSpec(
            "canary.recommendations",
            "Canary verdicts (proceed / hold / rollback) and shadow verdicts (promote_to_canary / hold / reject) "
            "on every change.",
            "canary_id",
            {
                deploy.CANARY_RECOMMENDATION: deploy.CanaryRecommendation,
                deploy.SHADOW_RECOMMENDATION: deploy.CanaryRecommendation,
            },
            one_partition=True,
        ),
    ],
    payloads={
        "deploy.events": {deploy.DEPLOY_STEP: deploy.DeploymentStep},
        "predict.served": {deploy.PREDICTION_SERVED: deploy.PredictionServed},
    },
    indexes={
        mongo.DEPLOY_HISTORY: [IndexModel([("time", DESCENDING)]), IndexModel([("model_id", ASCENDING)])],
        mongo.CANARY_STRATA: [IndexModel([("analysis_id", ASCENDING)])],
        mongo.CANARY_WINDOWS: [IndexModel([("canary_id", ASCENDING), ("window_end", ASCENDING)])],
    },
)
