"""Read-only admin views of the MTurk records; changes go through ``manage.py mturk``."""

from django.contrib import admin

from mturk.models import AssignmentRecord, Bonus, Hit, HitType, QualificationType, RequestRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Hit)
class HitAdmin(ReadOnlyAdmin):
    list_display = [
        "study",
        "environment",
        "batch",
        "hit_id",
        "max_assignments",
        "expires_at",
        "expired",
    ]
    list_filter = ["environment", "expired", "study"]
    search_fields = ["hit_id"]


@admin.register(HitType)
class HitTypeAdmin(ReadOnlyAdmin):
    list_display = ["study", "environment", "hit_type_id", "created_at"]
    list_filter = ["environment"]


@admin.register(AssignmentRecord)
class AssignmentRecordAdmin(ReadOnlyAdmin):
    list_display = ["assignment_id", "worker_id", "status", "hit", "submit_time", "synced_at"]
    list_filter = ["status", "hit__environment"]
    search_fields = ["assignment_id", "worker_id"]


@admin.register(Bonus)
class BonusAdmin(ReadOnlyAdmin):
    list_display = ["worker_id", "assignment_id", "amount", "reason", "status", "sent_at"]
    list_filter = ["status", "environment"]
    search_fields = ["worker_id", "assignment_id"]


@admin.register(QualificationType)
class QualificationTypeAdmin(ReadOnlyAdmin):
    list_display = ["name", "environment", "qualification_type_id", "study"]


@admin.register(RequestRecord)
class RequestRecordAdmin(ReadOnlyAdmin):
    list_display = ["key", "operation", "status", "environment", "updated_at"]
    list_filter = ["status", "operation", "environment"]
    search_fields = ["key"]


@admin.action(description="Publish to MTurk (shows the cost first)", permissions=["publish"])
def publish_to_mturk(modeladmin, request, queryset):
    """Study admin action: the plan (cost, fees, balance) of each selected study on a page of
    its own, then, once confirmed there, ``hit_publish`` (``MTURK_ENVIRONMENT``; production
    only with both switches). Offered only to holders of ``studies.publish_study`` (the study
    admin's ``has_publish_permission``)."""
    from django.contrib import messages
    from django.template.response import TemplateResponse

    from mturk.client import MTurkError
    from mturk.services import hit_publish, hit_publish_plan, study_client

    confirmed = request.POST.get("confirm") == "yes"
    plans = []
    for study in queryset:
        try:
            client = study_client(study=study)
            if confirmed:
                result = hit_publish(study=study, client=client, confirm=True)
                modeladmin.message_user(
                    request,
                    f"{study.slug}: {result.created} HITs created ({result.plan.environment})",
                )
            else:
                plans.append((study, hit_publish_plan(study=study, client=client).lines()))
        except MTurkError as exc:
            modeladmin.message_user(request, f"{study.slug}: {exc}", level=messages.ERROR)
    if confirmed or not plans:
        return None
    return TemplateResponse(request, "admin/mturk/publish_confirm.html", {"plans": plans})
