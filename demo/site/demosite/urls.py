from django.http import JsonResponse
from django.urls import path
from oauth2_provider.decorators import protected_resource


@protected_resource()
def hello(request):
    return JsonResponse({"hello": request.resource_owner.username})


urlpatterns = [path("api/hello/", hello)]
