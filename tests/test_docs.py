"""The per-type pages in ``docs/types/`` document every field of their contract models, and the
docs' relative links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_batchpred.contract import INTAKE_TYPES, OUTPUT_TYPES, JobSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
PAGES = {
    "localFile": "local-file.md",
    "s3": "s3.md",
    "azure": "azure.md",
    "gcp": "gcs.md",
    "dataset": "ai-catalog.md",
    "jdbc": "jdbc.md",
    "snowflake": "snowflake.md",
    "synapse": "synapse.md",
    "bigquery": "bigquery.md",
}


def wire_names(model: type) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()} - {"type"}


@pytest.mark.parametrize("adapter", sorted(PAGES))
def test_type_page_names_every_contract_field(adapter: str) -> None:
    page = (DOCS / "types" / PAGES[adapter]).read_text(encoding="utf-8")
    fields = wire_names(INTAKE_TYPES[adapter]) if adapter in INTAKE_TYPES else set()
    if adapter in OUTPUT_TYPES:
        fields |= wire_names(OUTPUT_TYPES[adapter])
    missing = sorted(name for name in fields if f"`{name}`" not in page)
    assert missing == [], f"docs/types/{PAGES[adapter]} does not name {missing}"


def test_job_options_are_documented() -> None:
    from airflow_batchpred.operators.batch_prediction import JOB_OPTION_FIELDS

    page = (DOCS / "types" / "local-file.md").read_text(encoding="utf-8")
    for name in JOB_OPTION_FIELDS:
        alias = JobSettings.model_fields[name].alias or name
        assert name in page, name
        assert alias in page, alias


def test_every_type_has_a_page() -> None:
    assert set(PAGES) == set(INTAKE_TYPES) | set(OUTPUT_TYPES)


def test_relative_links_resolve() -> None:
    broken = []
    for page in [REPO_ROOT / "README.md", *DOCS.rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO_ROOT)} -> {target}")
    assert broken == []
