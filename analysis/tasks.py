"""Celery tasks of the analysis (``default`` queue): take ids, call one service."""

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def analysis_export_study(
    study_id: int, out_dir: str, formats: list[str] | None = None
) -> list[str]:
    """Export a study's analysis into ``out_dir`` (``analysis.services.analysis_export``);
    idempotent: a redelivery rewrites the same files."""
    from analysis.services import EXPORT_FORMATS, analysis_export
    from studyplatform.studies.models import Study

    study = Study.objects.get(pk=study_id)
    written = analysis_export(study=study, out_dir=out_dir, formats=formats or list(EXPORT_FORMATS))
    return [str(path) for path in written]
