"""Study models (studies, conditions, task pairs, assignments, events) live here."""
