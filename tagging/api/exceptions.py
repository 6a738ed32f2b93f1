"""Errors every API view answers alike."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler as drf_exception_handler


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


def exception_handler(exc, context):
    # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE before reading it; say so in JSON, with the limit.
    if isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge(f"the request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes "
                           "(DATA_UPLOAD_MAX_MEMORY_SIZE)")
    return drf_exception_handler(exc, context)
