"""``python -m airflow_batchpred.server serve ...`` (same as ``batchpred-server``)."""

from __future__ import annotations

import sys

from airflow_batchpred.server.cli import main

sys.exit(main())
