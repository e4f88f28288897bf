"""Provider metadata read by Airflow's providers manager (no heavy imports here)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-batchpred",
        "name": "DataRobot Batch Prediction",
        "description": "Score data with DataRobot deployments through the Batch Prediction API.",
        "integrations": [
            {
                "integration-name": "DataRobot Batch Prediction",
                "external-doc-url": "https://docs.datarobot.com/en/docs/api/reference/batch-prediction-api/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "DataRobot Batch Prediction",
                "python-modules": [
                    "airflow_batchpred.hooks.datarobot",
                    "airflow_batchpred.hooks.credentials",
                    "airflow_batchpred.hooks.cloud_credentials",
                    "airflow_batchpred.hooks.data_stores",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "DataRobot Batch Prediction",
                "python-modules": [
                    f"airflow_batchpred.operators.{module}"
                    for module in (
                        "batch_prediction",
                        "local_file",
                        "dataset",
                        "s3",
                        "azure",
                        "gcs",
                        "jdbc",
                        "snowflake",
                        "synapse",
                        "bigquery",
                    )
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "DataRobot Batch Prediction",
                "python-modules": ["airflow_batchpred.sensors.batch_prediction"],
            }
        ],
        "triggers": [
            {
                "integration-name": "DataRobot Batch Prediction",
                "python-modules": ["airflow_batchpred.triggers.batch_prediction"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "datarobot",
                "hook-class-name": "airflow_batchpred.hooks.datarobot.DataRobotHook",
                "hook-name": "DataRobot",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "port", "login", "schema"],
                    "relabeling": {"password": "API Token"},
                    "placeholders": {"password": "DataRobot API key (Developer Tools > API keys)"},
                },
                "conn-fields": {
                    "endpoint": {
                        "label": "Endpoint",
                        "description": "API endpoint including /api/v2, e.g. "
                        "https://app.datarobot.com/api/v2 or http://127.0.0.1:8080/api/v2 "
                        "for the local server.",
                        "schema": {
                            "type": "string",
                            "format": "url",
                            "default": "https://app.datarobot.com/api/v2",
                        },
                    },
                    "timeout_seconds": {
                        "label": "Request timeout (s)",
                        "description": "Read timeout of each API request.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "default": 60},
                    },
                    "verify_ssl": {
                        "label": "Verify TLS certificates",
                        "description": "Turn off only for a server with a self-signed certificate.",
                        "schema": {"type": "boolean", "default": True},
                    },
                },
            }
        ],
        "extra-links": ["airflow_batchpred.links.DataRobotBatchPredictionJobLink"],
    }
