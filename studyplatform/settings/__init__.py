"""Settings package: ``base`` reads the environment; ``dev``, ``test`` and ``production`` refine it.

Select one with ``DJANGO_SETTINGS_MODULE`` (``manage.py`` defaults to ``dev``, the WSGI entry point
and the Docker image to ``production``, pytest to ``test``).
"""
