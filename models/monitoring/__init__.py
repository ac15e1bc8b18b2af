"""Monitoring: drift per signal (PSI), scores, calibration, selection, agreement, unscored."""

from models.monitoring._config import MonitorData, Thresholds
from models.monitoring._extract import extract_data
from models.monitoring._html import render_html, write_report
from models.monitoring._report import ALERT, ALERT_KINDS, alert_counts, latest_signal_psi, monitor
from models.monitoring._windows import Windows, default_windows

__all__ = [
    "ALERT",
    "ALERT_KINDS",
    "MonitorData",
    "Thresholds",
    "Windows",
    "alert_counts",
    "default_windows",
    "extract_data",
    "latest_signal_psi",
    "monitor",
    "render_html",
    "write_report",
]
