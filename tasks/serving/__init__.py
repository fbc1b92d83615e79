"""The registered models' serving code, logged as MLflow "models from code".

MLflow runs ``policy.py`` or ``reward_model.py`` itself when it loads a registered model
(`mlflow.pyfunc.load_model`, `mlflow models serve`); each file ends with
``mlflow.models.set_model(...)``. The library package ``instructgpt/`` is logged with the model
(``code_paths``) and the weights and tokenizer as its artifact ``model``, so a model loads
wherever its pip requirements are installed (tasks/registry.py), without this project. These
files therefore import only mlflow, pandas and ``instructgpt`` (torch and transformers through
it): never ``tasks``, ``flows``, Prefect, DVC or Great Expectations. Nothing imports them.
"""
