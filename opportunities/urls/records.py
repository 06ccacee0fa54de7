from django.urls import path

from opportunities.views import contacts, creating, record_activity, record_details

urlpatterns = [
    path("opportunities/new/", creating.create, name="create"),
    path("opportunities/<int:pk>/", record_details.detail, name="detail"),
    path("opportunities/<int:pk>/edit/", record_details.edit, name="edit"),
    path("opportunities/<int:pk>/record-status/", record_details.set_status, name="record_status"),
    path("opportunities/<int:pk>/notes/", record_activity.note_add, name="note_add"),
    path("opportunities/<int:pk>/tasks/", record_activity.task_add, name="task_add"),
    path(
        "opportunities/<int:pk>/communications/",
        record_activity.communication_add,
        name="communication_add",
    ),
    path("notes/<int:note_id>/edit/", record_activity.note_edit, name="note_edit"),
    path("notes/<int:note_id>/delete/", record_activity.note_delete, name="note_delete"),
    path("tasks/", record_activity.my_tasks, name="my_tasks"),
    path("tasks/<int:task_id>/done/", record_activity.task_done, name="task_done"),
    path("contacts/search/", contacts.contact_search, name="contact_search"),
    path("contacts/pick/", contacts.contact_pick, name="contact_pick"),
    path(
        "pipelines/<int:pipeline_id>/board/stages/<int:stage_id>/quick-add/",
        creating.quick_add,
        name="quick_add",
    ),
]
