"""The analysis' error, in a module of its own so that the web tier can catch it without
importing pandas (STYLE habit 21)."""

__all__ = ["AnalysisError"]


class AnalysisError(ValueError):
    """Input the analysis cannot use; the message names the column, row, cell or group."""
