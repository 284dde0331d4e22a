"""Pure statistics: estimators and tests at a landmark (no scenario, no simulation)."""
