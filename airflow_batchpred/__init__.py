"""Apache Airflow provider for DataRobot batch prediction jobs.

Kept import-light on purpose: every Airflow component loads provider entry points.
"""

from __future__ import annotations

__version__ = "0.1.0"
