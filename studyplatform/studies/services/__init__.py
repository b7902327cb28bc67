"""Study services: writes, keyword-only, callable from views, admin, Celery and commands."""
