"""What the studies core announces to the apps above it (explain, mturk, analysis).

The core never imports those apps; an app that reacts to a study event connects a receiver in
its ``AppConfig.ready()``, so a receiver whose module cannot be imported stops the process at
start-up instead of silently not running.
"""

from django.dispatch import Signal

# Sent by ``assignment_start`` inside its transaction when a participant gets a new assignment
# (not when an active or abandoned one is handed back). Keyword arguments: ``assignment``, the
# new ``Assignment`` (its study and participant loaded). Receivers that cause side effects
# outside the database defer them with ``transaction.on_commit`` / ``delay_on_commit``.
assignment_started = Signal()
