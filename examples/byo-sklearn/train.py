"""Bring your own model: a user's own scikit-learn intent classifier, logged to MiniAutoML's MLflow.

Nothing here imports MiniAutoML: it is a plain MLflow script. Point it at a workspace's tracking
store and `miniautoml serve` / `miniautoml predict` / `miniautoml bento build` take the model by
run id, NAME@ALIAS or NAME/VERSION, like the models training_code trains:

    export MLFLOW_TRACKING_URI=sqlite:///$WORKSPACE/.miniautoml/mlflow.db
    python examples/byo-sklearn/train.py --data data/clinc150/demo-part1.csv --name byo-intent --alias champion
    miniautoml -w $WORKSPACE predict byo-intent@champion "what is my bank balance"

(or `mlflow run examples/byo-sklearn --env-manager local -P data=...`). The data is a headerless
CSV of `text,label` rows. The model is a TF-IDF + logistic regression pipeline logged with
`mlflow.sklearn` and a signature of one string column `text` (the pipeline reads that column of
a DataFrame, which is what the pyfunc passes it); its pyfunc predicts labels (served
answers carry `scores: {}`).
"""

from __future__ import annotations

import argparse
import csv
import random

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline


def read_rows(path: str, limit: int) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [(r[0], r[1]) for r in csv.reader(handle) if len(r) >= 2 and r[0].strip()]
    if limit > 0:
        rows = rows[:limit]
    return [t for t, _ in rows], [label for _, label in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="headerless CSV: text,label")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N rows (0: all)")
    parser.add_argument("--name", default="byo-intent", help="registered model name")
    parser.add_argument("--alias", default="champion", help="alias set on the new version ('' : none)")
    parser.add_argument("--experiment", default="byo-sklearn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    texts, labels = read_rows(args.data, args.limit)
    order = list(range(len(texts)))
    random.Random(args.seed).shuffle(order)
    cut = max(1, len(order) // 5)
    test, train = order[:cut], order[cut:]
    # The pipeline takes a DataFrame with a `text` column, as its signature says: MLflow's pyfunc
    # hands the model a DataFrame (a bare TfidfVectorizer would iterate over its column names).
    pipeline = Pipeline(
        [
            ("tfidf", ColumnTransformer([("text", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), "text")])),
            ("clf", LogisticRegression(max_iter=1000, C=10.0)),
        ]
    )
    frame = pd.DataFrame({"text": texts})
    pipeline.fit(frame.iloc[train], [labels[i] for i in train])
    accuracy = pipeline.score(frame.iloc[test], [labels[i] for i in test])

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name="byo-sklearn") as run:
        mlflow.log_params({"model": "tfidf+logreg", "rows": len(texts), "seed": args.seed})
        mlflow.log_metric("accuracy", accuracy)
        example = pd.DataFrame({"text": texts[:3]})
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            input_example=example,
            signature=infer_signature(example, pipeline.predict(example)),
            registered_model_name=args.name or None,
        )
    version = info.registered_model_version
    if args.name and args.alias and version is not None:
        MlflowClient().set_registered_model_alias(args.name, args.alias, str(version))
    print(f"run {run.info.run_id}: accuracy {accuracy:.3f}; model {args.name} version {version}"
          + (f", alias {args.alias}" if args.alias else ""))


if __name__ == "__main__":
    main()
