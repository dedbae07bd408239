"""Metric suites by task: `SUITES[task](y_true, scores, threshold) -> {name: value}`."""

from sslmae.metrics.decisions import DECISIONS
from sslmae.metrics.mcc import mcc_suite
from sslmae.metrics.mlc import mlc_suite
from sslmae.metrics.per_class import per_class_table

SUITES = {"mlc": mlc_suite, "mcc": mcc_suite}
# the validation metric used for model selection, by task
PRIMARY = {"mlc": "macro_auprc", "mcc": "accuracy"}

__all__ = ["DECISIONS", "SUITES", "PRIMARY", "mlc_suite", "mcc_suite", "per_class_table"]
