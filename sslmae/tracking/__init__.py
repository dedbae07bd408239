"""MLflow tracking (runs, metrics, artifacts) and the model registry (challenger/champion).

mlflow is imported lazily inside functions: training runs without it when tracking is off.
"""
