"""The targeting code labels, kept in ``batches/codes.py`` (the XLSX Summary of the exports
names the codes too); re-exported here under the names the dashboard has always used."""

from __future__ import annotations

from ..batches.codes import AUDIENCES, INDUSTRIES, OBJECTIVES, label

__all__ = ["AUDIENCES", "INDUSTRIES", "OBJECTIVES", "label"]
