"""Score a local CSV file into a local CSV file."""

from __future__ import annotations

import os
from typing import Any

from airflow_batchpred.operators.batch_prediction import DataRobotBatchPredictionOperator


class DataRobotLocalFileBatchPredictionOperator(DataRobotBatchPredictionOperator):
    """Score ``input_file`` with a deployment and write the scored CSV to ``output_file``.

    The upload streams from disk (flat memory; ``multipart_upload=True`` sends parts that each
    start with the header row). In sync mode the result streams down while the job scores; in
    deferrable mode the worker uploads, defers while the job runs, and downloads when it resumes.
    The output is written to a temporary file renamed into place only if the job COMPLETED, so a
    failed job leaves no file.

    :param input_file: the CSV to score (its format follows ``csv_settings``).
    :param output_file: where to write the scored CSV.

    Every other argument is that of :class:`DataRobotBatchPredictionOperator`.
    """

    def __init__(
        self,
        *,
        input_file: str | os.PathLike[str],
        output_file: str | os.PathLike[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(input_file=input_file, output_file=output_file, **kwargs)

    def default_intake_settings(self) -> dict[str, Any]:
        intake: dict[str, Any] = {"type": "localFile"}
        if self.multipart_upload:
            intake["multipart"] = True
        return intake

    def default_output_settings(self) -> dict[str, Any]:
        return {"type": "localFile"}
