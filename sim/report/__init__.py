"""Figures and the self-contained HTML reports."""
