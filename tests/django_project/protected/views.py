"""The API endpoint django-oauth-toolkit protects."""

from django.http import JsonResponse
from oauth2_provider.views import ProtectedResourceView


class HelloView(ProtectedResourceView):
    """GET /api/hello/: 200 JSON with a valid Bearer token, 403 otherwise."""

    def get(self, request, *args, **kwargs):
        return JsonResponse({"hello": "world"})
