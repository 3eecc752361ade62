"""Scoring models on infill tasks: HumanEval-Infilling by running tests, and jsonl tasks by text metrics."""
