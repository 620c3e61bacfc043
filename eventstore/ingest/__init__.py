"""Ingestion of Claude Code transcript trees into the log."""

from eventstore.ingest.ingester import Ingester, IngestReport

__all__ = ["IngestReport", "Ingester"]
