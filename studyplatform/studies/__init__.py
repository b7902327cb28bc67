"""The study app: studies, conditions, task pairs, counterbalanced assignment, the worker's HIT
pages and events, questionnaires, the researcher API and admin."""
