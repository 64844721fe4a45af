"""Tabular fraud/anomaly models: LightGBM (classification) and Isolation Forest (anomaly detection)."""

from ml.tabular.isolation_forest import IsolationForestModel
from ml.tabular.lightgbm_model import LightGBMModel
from ml.tabular.train import TrainOutcome, model_class, train_tabular

__all__ = ["IsolationForestModel", "LightGBMModel", "TrainOutcome", "model_class", "train_tabular"]
