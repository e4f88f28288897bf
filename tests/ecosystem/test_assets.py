"""Assets: a scoring run publishes its output Asset and queues the DAG scheduled on it.

``dag.test()`` runs one DAG and no scheduler, so the test takes the scheduler's steps itself: it
runs the producer with ``dag.test()``, checks the asset event and the consumer's entry in the
asset queue, lets the scheduler's own DagRun-creation step turn that entry into an
asset-triggered run of the consumer (state ``queued``), then runs the consumer with
``dag.test()``, which executes a run of its own (a manual one), reading the fresh predictions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from airflow_batchpred.server import models

PRODUCER = "example_batchpred_assets_producer"
CONSUMER = "example_batchpred_assets_consumer"


def state_of(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def producer_asset_uri() -> str:
    """The URI both DAGs of the pair use, computed as the DAG files do at parse time."""
    default = Path(tempfile.gettempdir()) / "batchpred" / "asset-predictions.csv"
    return f"file://{os.environ.get('BATCHPRED_ASSET_OUTPUT', str(default))}"


def create_scheduled_runs() -> None:
    """One pass of the scheduler's DagRun creation (``_create_dagruns_for_dags``)."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit

    runner = SchedulerJobRunner(job=Job(), executors=[])
    with create_session() as session, prohibit_commit(session) as guard:
        runner._create_dagruns_for_dags(guard, session)


def sync_dags_and_unpause(dag_id: str) -> None:
    """Write every DAG of the dags folder to the database (as ``dag.test()`` does) and unpause ``dag_id``.

    The asset manager queues only unpaused DAGs, like a deployment where the consumer is switched on.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)
    with create_session() as session:
        model = session.get(DagModel, dag_id)
        assert model is not None, f"{dag_id} was not synced"
        model.is_paused = False


def test_scoring_run_queues_the_asset_scheduled_dag(
    run_dag: Any, xcom_of: Any, local_server: Any, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    uri = producer_asset_uri()
    predictions = Path(uri.removeprefix("file://"))
    predictions.parent.mkdir(parents=True, exist_ok=True)
    predictions.unlink(missing_ok=True)
    source = models.write_demo_csv(models.DEMO_BINARY_ID, tmp_path / "to_predict.csv", 80, seed=11)
    sync_dags_and_unpause(CONSUMER)

    producer_run = run_dag(PRODUCER, {"input_file": str(source), "deployment_id": models.DEMO_BINARY_ID})

    assert state_of(producer_run) == "success"
    assert xcom_of(producer_run, "score_and_publish")["scored_rows"] == 80
    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri=uri).one()
        events = (
            session.query(AssetEvent)
            .filter_by(asset_id=asset.id, source_dag_id=PRODUCER, source_run_id=producer_run.run_id)
            .all()
        )
        assert len(events) == 1
        assert events[0].source_task_id == "score_and_publish"
        event_id = events[0].id
        queued = session.query(AssetDagRunQueue).filter_by(asset_id=asset.id, target_dag_id=CONSUMER).all()
        assert len(queued) == 1, "the producer's asset event did not queue the consumer"

    # The scheduler's DagRun-creation step turns the queue entry into an asset-triggered run.
    create_scheduled_runs()
    with create_session() as session:
        runs = session.query(DagRun).filter_by(dag_id=CONSUMER, run_type=DagRunType.ASSET_TRIGGERED).all()
        triggered = [run for run in runs if event_id in {e.id for e in run.consumed_asset_events}]
        assert len(triggered) == 1
        assert state_of(triggered[0]) == "queued"
        assert session.query(AssetDagRunQueue).filter_by(target_dag_id=CONSUMER).count() == 0

    # dag.test() executes a run of its own (manual): the consumer reads the fresh predictions.
    consumer_run = run_dag(CONSUMER)
    assert state_of(consumer_run) == "success"
    summary = xcom_of(consumer_run, "summarize_predictions")
    assert summary["rows"] == 80
    assert "PREDICTION" in " ".join(summary["columns"])


def test_default_outlets_follow_the_output_and_can_be_turned_off() -> None:
    from airflow.sdk import DAG, Asset

    from airflow_batchpred.operators.gcs import DataRobotGCSBatchPredictionOperator
    from airflow_batchpred.operators.jdbc import DataRobotJdbcBatchPredictionOperator
    from airflow_batchpred.operators.s3 import DataRobotS3BatchPredictionOperator

    common = {"deployment_id": "d", "source_url": "s3://in/x.csv"}
    with DAG("outlet_defaults", schedule=None):
        literal = DataRobotS3BatchPredictionOperator(
            task_id="a", destination_url="s3://out/p/y.csv", **common
        )
        templated = DataRobotS3BatchPredictionOperator(
            task_id="b", destination_url="s3://out/{{ ds }}/y.csv", **common
        )
        off = DataRobotS3BatchPredictionOperator(
            task_id="c", destination_url="s3://out/p/y.csv", output_asset=False, **common
        )
        explicit = DataRobotS3BatchPredictionOperator(
            task_id="d", destination_url="s3://out/p/y.csv", outlets=[Asset("s3://mine/z")], **common
        )
        gcs = DataRobotGCSBatchPredictionOperator(
            task_id="e", deployment_id="d", source_url="gs://in/x.csv", destination_url="gs://out/y.csv"
        )
        table = DataRobotJdbcBatchPredictionOperator(
            task_id="f", deployment_id="d", postgres_conn_id="pg", source_table="t", target_table="u"
        )
    assert [a.uri for a in literal.outlets] == ["s3://out/p/y.csv"]
    assert templated.outlets == []
    assert off.outlets == []
    assert [a.uri for a in explicit.outlets] == ["s3://mine/z"]
    assert [a.uri for a in gcs.outlets] == ["gs://out/y.csv"]
    assert table.outlets == []


def test_mapped_tasks_get_no_default_outlet() -> None:
    from airflow.sdk import DAG

    from airflow_batchpred.operators.s3 import DataRobotS3BatchPredictionOperator

    with DAG("outlet_mapped", schedule=None):
        mapped = DataRobotS3BatchPredictionOperator.partial(
            task_id="m", deployment_id="d", source_url="s3://in/x.csv"
        ).expand(destination_url=["s3://out/1.csv", "s3://out/2.csv"])
    assert mapped.outlets == []
    # What MappedOperator.unmap builds per map index on the worker: the expanded value must not
    # become an outlet the DAG never declared.
    unmapped = DataRobotS3BatchPredictionOperator(
        task_id="m",
        deployment_id="d",
        source_url="s3://in/x.csv",
        destination_url="s3://out/1.csv",
        _airflow_from_mapped=True,
    )
    assert unmapped.outlets == []
