"""The shared wire contract: spellings in, camelCase out, errors that name the field."""

from __future__ import annotations

import pytest

from airflow_batchpred.contract import JobStatus, SettingsValidationError, parse_job_settings


def test_snake_and_camel_spellings_give_the_same_wire_body() -> None:
    snake = parse_job_settings(
        {
            "deployment_id": "d",
            "intake_settings": {"type": "local_file"},
            "output_settings": {
                "type": "jdbc",
                "data_store_id": "ds",
                "table": "t",
                "statement_type": "insertUpdate",
                "where_columns": ["id"],
            },
            "csv_settings": {"delimiter": "tab"},
        }
    )
    camel = parse_job_settings(
        {
            "deploymentId": "d",
            "intakeSettings": {"type": "localFile"},
            "outputSettings": {
                "type": "jdbc",
                "dataStoreId": "ds",
                "table": "t",
                "statementType": "insert_update",
                "whereColumns": ["id"],
            },
            "csvSettings": {"delimiter": "tab"},
        }
    )
    assert snake.to_wire() == camel.to_wire()
    assert snake.to_wire()["outputSettings"]["statementType"] == "insert_update"
    assert snake.csv.delimiter_char == "\t"


def test_terraform_spelling_of_ngram_explanations_is_accepted() -> None:
    settings = parse_job_settings({"deploymentId": "d", "maxNGramExplanations": "all"})
    assert settings.to_wire()["maxNgramExplanations"] == "all"


def test_a_value_fitting_no_union_branch_gets_one_problem_on_its_field() -> None:
    with pytest.raises(SettingsValidationError) as caught:
        parse_job_settings({"deployment_id": "d", "chunk_size": 10})
    assert caught.value.problems == [
        (
            "chunk_size",
            "Input should be 'auto', 'fixed' or 'dynamic'; or: Input should be greater than or equal to 1024",
        )
    ]


def test_api_style_paths_are_camel_case() -> None:
    with pytest.raises(SettingsValidationError) as caught:
        parse_job_settings(
            {"deploymentId": "d", "intakeSettings": {"type": "s3", "url": "s3://b/k", "bogus": 1}}, camel=True
        )
    ((path, message),) = caught.value.problems
    assert path == "intakeSettings.bogus"
    assert "credentialId" in message


def test_statuses_print_as_the_api_spells_them() -> None:
    assert str(JobStatus.ABORTED) == "ABORTED"
    assert JobStatus.COMPLETED.is_terminal
    assert not JobStatus.RUNNING.is_terminal
