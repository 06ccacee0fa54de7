from django.urls import path

from opportunities.views import records

urlpatterns = [
    path("opportunities/new/", records.create, name="create"),
    path("opportunities/<int:pk>/", records.detail, name="detail"),
    path("opportunities/<int:pk>/edit/", records.edit, name="edit"),
    path("opportunities/<int:pk>/record-status/", records.set_status, name="record_status"),
    path("opportunities/<int:pk>/notes/", records.note_add, name="note_add"),
    path("opportunities/<int:pk>/tasks/", records.task_add, name="task_add"),
    path(
        "opportunities/<int:pk>/communications/",
        records.communication_add,
        name="communication_add",
    ),
    path("notes/<int:note_id>/edit/", records.note_edit, name="note_edit"),
    path("notes/<int:note_id>/delete/", records.note_delete, name="note_delete"),
    path("tasks/", records.my_tasks, name="my_tasks"),
    path("tasks/<int:task_id>/done/", records.task_done, name="task_done"),
    path("contacts/search/", records.contact_search, name="contact_search"),
    path("contacts/pick/", records.contact_pick, name="contact_pick"),
    path(
        "pipelines/<int:pipeline_id>/board/stages/<int:stage_id>/quick-add/",
        records.quick_add,
        name="quick_add",
    ),
]
