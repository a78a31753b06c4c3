"""Walk-forward backtests of the detectors over CSV files, scored like NAB."""
