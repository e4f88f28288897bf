"""Batch prediction jobs: their records, uploads, spec defaults and the runner that scores them."""
