"""Read-only archive API: thin views that call one selector and serialise."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Archive
from .selectors import archive_list, category_list, category_superclasses


class ArchiveListApi(APIView):
    class ArchiveOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        description = serializers.CharField()
        n_images = serializers.IntegerField()
        n_categories = serializers.IntegerField()
        statistics_updated_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(responses=ArchiveOutputSerializer(many=True))
    def get(self, request):
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(archive_list(), request, view=self)
        return paginator.get_paginated_response(self.ArchiveOutputSerializer(page, many=True).data)


class CategoryListApi(APIView):
    """Every category of an archive with its statistics and superclass among annotated classes."""

    class CategoryOutputSerializer(serializers.Serializer):
        coco_id = serializers.IntegerField()
        name = serializers.CharField()
        supercategory = serializers.CharField()
        instance_count = serializers.IntegerField()
        image_count = serializers.IntegerField()
        clutter = serializers.FloatField(allow_null=True)
        size = serializers.FloatField(allow_null=True)
        superclass = serializers.CharField(allow_null=True)

    @extend_schema(responses=CategoryOutputSerializer(many=True))
    def get(self, request, archive_id: int):
        archive = get_object_or_404(Archive, pk=archive_id)
        categories = list(category_list(archive=archive))
        annotated = [c for c in categories if c.instance_count > 0]
        codes = category_superclasses(archive=archive) if len(annotated) >= 2 else {}
        for category in categories:
            category.superclass = codes.get(category.name)
        return Response(self.CategoryOutputSerializer(categories, many=True).data)
