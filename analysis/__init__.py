"""Study analysis: per-task metrics, superclass tables, permutation tests, figures, exports."""
