"""Honest promotion: golden sets, evaluation runs (MLflow evaluate) and the gate before an alias moves.

records.py    golden sets, evaluations, gate rules and decisions
data.py       a snapshot's rows minus those the version trained on
golden.py     a model's golden set, kept as a registered-model tag
service.py    evaluating a version on a snapshot: one cached MLflow evaluation run
gate.py       the decision, a pure function over two evaluations' metrics
promotion.py  `models promote`: evaluate candidate and holder, decide, record, move the alias
"""
