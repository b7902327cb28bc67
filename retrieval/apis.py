"""Archive and feature-set API: thin views that call one selector or service and serialise."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Archive, FeatureSet
from .selectors import archive_list, category_list, category_superclasses, feature_set_list


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


class FeatureSetOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    archive = serializers.IntegerField(source="archive_id")
    backbone_config = serializers.JSONField()
    weights_sha256 = serializers.CharField()
    status = serializers.CharField()
    n_rows = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    dim = serializers.IntegerField(allow_null=True)
    failed_images = serializers.JSONField()
    error = serializers.CharField()
    seconds = serializers.FloatField()


class FeatureSetListCreateApi(APIView):
    """The feature sets of an archive; POST a backbone config to extract one on the gpu queue."""

    class FeatureSetInputSerializer(serializers.Serializer):
        backbone_config = serializers.DictField(
            help_text='e.g. {"name": "resnet50", "layer": "avgpool", "weights": "imagenet"}'
        )

    @extend_schema(responses=FeatureSetOutputSerializer(many=True))
    def get(self, request, archive_id: int):
        archive = get_object_or_404(Archive, pk=archive_id)
        return Response(
            FeatureSetOutputSerializer(feature_set_list(archive=archive), many=True).data
        )

    @extend_schema(request=FeatureSetInputSerializer, responses=FeatureSetOutputSerializer)
    def post(self, request, archive_id: int):
        # Imported here: it loads torch, which processes that only list archives do without.
        from .services.features import feature_set_create

        archive = get_object_or_404(Archive, pk=archive_id)
        data = self.FeatureSetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            feature_set, created = feature_set_create(
                archive=archive, backbone_config=data.validated_data["backbone_config"]
            )
        except ValueError as exc:
            raise ValidationError({"backbone_config": [str(exc)]}) from exc
        return Response(
            FeatureSetOutputSerializer(feature_set).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class FeatureSetDetailApi(APIView):
    """One feature set with its extraction progress (``rows_done`` of ``n_rows``)."""

    @extend_schema(responses=FeatureSetOutputSerializer)
    def get(self, request, feature_set_id: int):
        feature_set = get_object_or_404(FeatureSet, pk=feature_set_id)
        return Response(FeatureSetOutputSerializer(feature_set).data)
