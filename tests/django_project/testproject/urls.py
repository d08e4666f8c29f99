"""URLs: django-oauth-toolkit's endpoints under /o/ and the protected API."""

from django.urls import include, path

from protected.views import HelloView

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("api/hello/", HelloView.as_view(), name="hello"),
]
